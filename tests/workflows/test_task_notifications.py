"""A task that stops for an operator tells people, reminds them on a durable timer, escalates to a
second list, and stops reminding the moment an operator acts; a node in ERROR is told too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from lab_fixtures import JOURNAL, MakeLab, StartTask, TestLab, wait_until
from notify_receivers import Webhook, webhook_receiver
from temporalio.client import Client, WorkflowHistory

from task_scheduler import TaskState, load_config
from task_scheduler.engine.contracts import lab_workflow_id
from task_scheduler.engine.task_state import CommandRequest, ContinueRequest
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.task import TaskWorkflow

WITHIN_S = 15.0


@pytest.fixture
def operators() -> Iterator[Webhook]:
    with webhook_receiver() as hook:
        yield hook


@pytest.fixture
def managers() -> Iterator[Webhook]:
    with webhook_receiver() as hook:
        yield hook


def notifying(lab: TestLab, notifications: dict[str, Any]) -> TestLab:
    (lab.folder / "notifications.json").write_text(json.dumps(notifications))
    lab.config = load_config(lab.nodes_file, lab.workflows_file)
    return lab


async def test_failed_step_tells_reminds_escalates_and_stops_when_the_operator_acts(
    temporal_client: Client,
    task_queue: str,
    make_lab: MakeLab,
    start_task: StartTask,
    operators: Webhook,
    managers: Webhook,
) -> None:
    lab = make_lab({"dose": [{"node": "a", "args": {"fail": True}}, "b"]})
    policy = {"remind_after_s": 1, "max_reminders": 20, "escalate_after_s": 2.5}
    lab = notifying(lab, {"targets": [operators.url], "escalate_to": [managers.url], **policy})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "dose")
        (error,) = await wait_until(lambda: operators.messages("task_error"), WITHIN_S, "the task_error")
        for words in (handle.id, "step 1", lab.node("a"), "failed on purpose"):
            assert words in error["message"]
        assert f"task-scheduler task continue {handle.id} --mode next" in error["message"]

        reminders = await wait_until(
            lambda: len(operators.messages("task_reminder")) >= 2 and operators.messages("task_reminder"),
            WITHIN_S,
            "two reminders",
        )
        keys = [r["idempotency_key"] for r in reminders[:2]]
        assert keys == [f"{handle.id}/task_reminder/1.{n}" for n in (1, 2)]
        (escalation,) = await wait_until(lambda: managers.messages(), WITHIN_S, "the escalation")
        assert escalation["event"] == "task_escalation" and handle.id in escalation["message"]
        assert not operators.messages("task_escalation")  # the second list only

        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="next", by="alice"))
        result = await asyncio.wait_for(handle.result(), 30)
        assert result.state is TaskState.FINISHED
        # The reminders stopped with the continue: far fewer than 20 were sent, and the task is over.
        history = await handle.fetch_history()
        signals = [e.signal_external_workflow_execution_initiated_event_attributes for e in history.events]
        to_lab = [s for s in signals if s.workflow_execution.workflow_id == lab_workflow_id(task_queue)]
        sent = len(to_lab) - 2  # the task_error and the escalation
        assert 2 <= sent < 20
        await wait_until(lambda: len(operators.messages("task_reminder")) == sent, WITHIN_S, "every reminder")
        assert [m["node_id"] for m in operators.messages("node_error")] == [lab.node("a")]
        # The Temporal UI names each timer and each activity (their summaries), not "1 (29m, 59s)".
        timers = summaries(history, "timer_started_event_attributes")
        assert f"remind the operator: the task waits in ERROR at step 1 on node {lab.node('a')}" in timers
        assert f"escalate: the task still waits in ERROR at step 1 on node {lab.node('a')}" in timers
        assert None not in summaries(history, "activity_task_scheduled_event_attributes")


def summaries(history: WorkflowHistory, kind: str) -> list[str | None]:
    """The summaries (user metadata) of the history's events of one kind, None where one has none."""
    return [
        json.loads(e.user_metadata.summary.data) if e.user_metadata.HasField("summary") else None
        for e in history.events
        if e.HasField(kind)
    ]


async def test_a_lab_without_notifications_sets_no_timer(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"dose": [{"node": "a", "args": {"fail": True}}]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "dose")

        async def in_error() -> bool:
            return (await handle.query(TaskWorkflow.get_status)).state is TaskState.ERROR

        await wait_until(in_error, WITHIN_S, "the task in ERROR")
        history = await handle.fetch_history()
        assert not [e for e in history.events if e.HasField("timer_started_event_attributes")]
        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="next"))
        assert (await asyncio.wait_for(handle.result(), 30)).state is TaskState.FINISHED


async def test_finished_and_cancelled_tasks_are_told_when_asked_for(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask, operators: Webhook
) -> None:
    lab = make_lab({"dose": ["a"]})
    lab = notifying(lab, {"targets": [{"url": operators.url, "events": ["task_finished", "task_cancelled"]}]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        done = await start_task(lab, "dose")
        await asyncio.wait_for(done.result(), 30)
        (finished,) = await wait_until(lambda: operators.messages("task_finished"), WITHIN_S, "task_finished")
        assert finished["task_id"] == done.id
        said = f"Task {done.id} (workflow {lab.workflow('dose')}) finished: 1 step done."
        assert said in finished["message"]

        hold = JOURNAL.hold(f"cancel-{lab.suffix}")
        cancelled = await start_task(lab, "dose", {"hold": hold})
        await wait_until(lambda: JOURNAL.started(lab.node("a"), cancelled.id), WITHIN_S, "the step to run")
        await cancelled.execute_update(TaskWorkflow.cancel, CommandRequest(reason="wrong plate", by="bob"))
        await cancelled.cancel()
        (told,) = await wait_until(lambda: operators.messages("task_cancelled"), WITHIN_S, "task_cancelled")
        assert told["task_id"] == cancelled.id
        assert "cancelled by bob: wrong plate" in told["message"]


async def test_one_failure_is_told_alike_by_task_and_node_and_the_finish_counts_the_skipped_step(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask, operators: Webhook
) -> None:
    lab = make_lab({"dose": [{"node": "a", "args": {"fail": True}}, "b"]})
    events = ["task_error", "node_error", "task_finished"]
    lab = notifying(lab, {"targets": [{"url": operators.url, "events": events}]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "dose")
        (task,) = await wait_until(lambda: operators.messages("task_error"), WITHIN_S, "the task_error")
        (node,) = await wait_until(lambda: operators.messages("node_error"), WITHIN_S, "the node_error")
        # One failure, one decision: the node's message advises what the task's does, on the task.
        told = task["message"]
        advice = told[told.index(f"Task {handle.id} waits") : told.index("\n\nkey:")]
        assert f"task-scheduler task continue {handle.id} --mode next" in advice
        assert advice in node["message"]

        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="next", by="alice"))
        assert (await asyncio.wait_for(handle.result(), 30)).state is TaskState.FINISHED
        (finished,) = await wait_until(lambda: operators.messages("task_finished"), WITHIN_S, "task_finished")
        assert "finished: 1 step done, 1 skipped." in finished["message"]
