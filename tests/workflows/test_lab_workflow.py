"""Notifications delivered by the LabWorkflow to a real webhook and a real SMTP server on loopback; PC
liveness told when a worker stops and comes back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from lab_fixtures import MakeLab, TestLab, wait_until
from notify_receivers import Mailbox, Webhook, text_of
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from task_scheduler import load_config
from task_scheduler.engine.contracts import lab_workflow_id
from task_scheduler.engine.lab_state import LabState, LabStatus, lab_plan
from task_scheduler.engine.notifications import TaskStop, task_error_notification
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.lab import LabWorkflow
from task_scheduler.workflows.sandbox import workflow_runner

WITHIN_S = 10.0  # "within seconds"


def with_notifications(lab: TestLab, notifications: dict[str, Any]) -> TestLab:
    """The lab with a notifications.json beside its nodes.json, loaded again."""
    (lab.folder / "notifications.json").write_text(json.dumps(notifications))
    lab.config = load_config(lab.nodes_file, lab.workflows_file)
    return lab


def lab_handle(client: Client, task_queue: str) -> WorkflowHandle[LabWorkflow, None]:
    return client.get_workflow_handle_for(LabWorkflow.run, lab_workflow_id(task_queue))


async def lab_status(client: Client, task_queue: str) -> LabStatus:
    return await lab_handle(client, task_queue).query(LabWorkflow.status)


async def status_when(
    client: Client, task_queue: str, check: Callable[[LabStatus], bool], what: str
) -> LabStatus:
    """The LabWorkflow's status once `check` holds (a delivery is recorded just after its receiver has it)."""

    async def probe() -> LabStatus | None:
        status = await lab_status(client, task_queue)
        return status if check(status) else None

    return await wait_until(probe, WITHIN_S, what)


class Workers:
    """In-process workers of the test's task queue; those still running are stopped at teardown."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client, self.task_queue = client, task_queue
        self.running: list[LabWorker] = []

    async def start(self, lab: TestLab, **options: Any) -> LabWorker:
        worker = LabWorker(self.client, WorkerOptions(lab=lab.config, task_queue=self.task_queue, **options))
        await worker.start()
        self.running.append(worker)
        return worker

    async def stop(self, worker: LabWorker) -> None:
        self.running.remove(worker)
        await worker.stop()


@pytest.fixture
async def workers(temporal_client: Client, task_queue: str) -> AsyncIterator[Workers]:
    started = Workers(temporal_client, task_queue)
    yield started
    for worker in reversed(started.running):
        await started.stop(worker)


def step_failed(lab: TestLab, attempt: int = 1) -> Any:
    return task_error_notification(
        TaskStop(
            "task-notify-1", lab.workflow("one"), 1, lab.node("b"), "the gripper dropped the plate", attempt
        )
    )


async def test_task_error_notification_reaches_a_webhook_and_a_mailbox_within_seconds(
    temporal_client: Client,
    task_queue: str,
    make_lab: MakeLab,
    workers: Workers,
    webhook: Webhook,
    mailbox: Mailbox,
) -> None:
    lab = with_notifications(make_lab({"one": ["a", "b"]}), {"targets": [webhook.url, mailbox.url]})
    await workers.start(lab)
    notification = step_failed(lab)
    await lab_handle(temporal_client, task_queue).signal(LabWorkflow.notify, notification)

    await wait_until(lambda: webhook.messages() and mailbox.messages(), WITHIN_S, "a message to each target")
    [message] = webhook.messages()
    [mail] = mailbox.messages()
    for text in (message["message"], text_of(mail)):
        assert "task-notify-1" in text and f"step 2, node {lab.node('b')}" in text
        assert "the gripper dropped the plate" in text
        assert "task-scheduler task continue task-notify-1" in text
        assert "task-scheduler task continue task-notify-1 --mode next" in text
        assert "task-scheduler task cancel task-notify-1" in text
        assert f"key: {notification.key}" in text
    assert message["idempotency_key"] == notification.key == webhook.headers[0]["Idempotency-Key"]
    assert message["event"] == "task_error" and message["task_id"] == "task-notify-1"
    assert message["type"] == "failure"
    assert mail["Subject"] == notification.title and mail["To"] == "operators@lab.example.org"
    status = await status_when(temporal_client, task_queue, lambda s: s.sent == 2, "both recorded as sent")
    assert status.failed == 0 and not status.in_flight


async def test_refusing_target_gets_the_message_once_it_is_back_exactly_once_per_key(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, workers: Workers, webhook: Webhook
) -> None:
    lab = with_notifications(make_lab({"one": ["a", "b"]}), {"targets": [webhook.url]})
    # Short retries, and a continue-as-new every 2 checks of the workers while the webhook refuses.
    state = LabState(plan=lab_plan(lab.config, check_every_s=0.5), checks_per_run=2, delivery_retry_s=1.0)
    await temporal_client.start_workflow(
        LabWorkflow.run, state, id=lab_workflow_id(task_queue), task_queue=task_queue
    )
    webhook.refuse(3)
    await workers.start(lab, lab_check_s=0.5)
    notification = step_failed(lab)
    handle = lab_handle(temporal_client, task_queue)
    await handle.signal(LabWorkflow.notify, notification)
    await handle.signal(LabWorkflow.notify, notification)  # a repeat of the same key

    await wait_until(lambda: webhook.messages(), 30.0, "the message, once the webhook is back")
    assert webhook.refused == 3
    status = await lab_status(temporal_client, task_queue)
    assert status.runs >= 1  # it continued as new while the delivery was under way
    second = step_failed(lab, attempt=2)  # the same task stopping again: a new key
    await handle.signal(LabWorkflow.notify, second)
    await wait_until(lambda: len(webhook.messages()) == 2, WITHIN_S, "the second message")
    assert [m["idempotency_key"] for m in webhook.messages()] == [notification.key, second.key]
    status = await status_when(temporal_client, task_queue, lambda s: s.sent == 2, "both recorded as sent")
    assert status.dropped_repeats == 1 and not status.in_flight
    await replays(temporal_client, task_queue)


async def test_target_that_keeps_refusing_is_visible_in_the_status_with_its_last_error(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, workers: Workers, webhook: Webhook
) -> None:
    lab = with_notifications(make_lab({"one": ["a", "b"]}), {"targets": [webhook.url]})
    state = LabState(plan=lab_plan(lab.config), delivery_retry_s=0.2, delivery_deadline_s=2.0)
    await temporal_client.start_workflow(
        LabWorkflow.run, state, id=lab_workflow_id(task_queue), task_queue=task_queue
    )
    webhook.refuse(1000)
    await workers.start(lab)
    await lab_handle(temporal_client, task_queue).signal(LabWorkflow.notify, step_failed(lab))

    status = await status_when(temporal_client, task_queue, lambda s: bool(s.failures), "a delivery given up")
    [failure] = status.failures
    assert failure.target == f"json://127.0.0.1:{webhook.port}/***" and not failure.sent
    assert "500" in (failure.error or "")
    assert status.failed == 1 and webhook.refused >= 2 and not webhook.messages()


async def test_worker_offline_then_online_is_told_once_each(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, workers: Workers, webhook: Webhook
) -> None:
    nodes = {"a": {"worker": "pc-a"}, "b": {"worker": "pc-b", "offline_after_s": 1}}
    lab = with_notifications(make_lab({"one": ["a", "b"]}, nodes), {"targets": [webhook.url]})
    await workers.start(lab, name="pc-a", lab_check_s=0.3)
    pc_b = await workers.start(lab, name="pc-b", run_workflows=False)
    await wait_until(lambda: all_online(temporal_client, task_queue), WITHIN_S, "both workers online")

    await workers.stop(pc_b)
    [offline] = await wait_until(lambda: webhook.messages("worker_offline"), WITHIN_S, "worker_offline")
    assert offline["worker"] == "pc-b" and lab.node("b") in offline["message"]
    assert "task-scheduler worker --name pc-b" in offline["message"]
    await workers.start(lab, name="pc-b", run_workflows=False)
    [online] = await wait_until(lambda: webhook.messages("worker_online"), WITHIN_S, "worker_online")
    assert online["worker"] == "pc-b" and online["attempt"] == offline["attempt"] == "1"
    assert not [m for m in webhook.messages() if m["worker"] == "pc-a"]
    assert len(webhook.messages()) == 2
    await replays(temporal_client, task_queue)


async def replays(client: Client, task_queue: str) -> None:
    """The LabWorkflow's history (its current run) replays through the workflow code: deterministic."""
    history = await lab_handle(client, task_queue).fetch_history()
    replayer = Replayer(
        workflows=[LabWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner()
    )
    await replayer.replay_workflow(history)


async def all_online(client: Client, task_queue: str) -> bool:
    status = await lab_status(client, task_queue)
    return len(status.workers) == 2 and all(w.online for w in status.workers)
