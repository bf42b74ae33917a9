"""Cancel of a task whose step waits in its node's line: Temporal hands an activity its cancel only in
the answer to a heartbeat, and a waiting step beats every 10 s, so the cancel took up to 10 s. The task
withdraws the run from the line instead (the node's ledger refuses it, and the worker hosting the node
has it heartbeat at once): the task is cancelled within about a second."""

from __future__ import annotations

import time
from typing import Any

import pytest
from lab_fixtures import JOURNAL, MakeLab, StartTask, wait_until
from saved_histories import keep
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus, WorkflowHandle

from task_scheduler import TaskState
from task_scheduler.activities import heartbeat
from task_scheduler.client.handles import ledger_handle
from task_scheduler.engine.contracts import WITHDRAW_WAITER
from task_scheduler.engine.task_state import CommandRequest, StepOutcome
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.node import NodeWorkflow
from task_scheduler.workflows.task import TaskWorkflow

# Far below the waiting step's next heartbeat (WAITING_INTERVAL_S is 120 s here) and the holder's own
# give-up (HOLD_TIMEOUT_S), far above what a loaded machine needs for the withdrawal (0.1 s idle): a
# cancel within it came by the withdrawal, not by a beat.
CANCEL_DEADLINE_S = 20.0


async def _closed(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionDescription | None:
    description = await handle.describe()
    return None if description.status is WorkflowExecutionStatus.RUNNING else description


async def _has_beaten(handle: WorkflowHandle[Any, Any]) -> bool:
    """The step's first heartbeat ("waiting") reached the server: a cancel before it would have come in
    that beat's answer."""
    description = await handle.describe()
    return any(a.heartbeat_details.payloads for a in description.raw_description.pending_activities)


async def test_cancel_of_a_task_waiting_for_its_node_reaches_its_step_at_once_not_at_its_next_beat(
    temporal_client: Client,
    task_queue: str,
    make_lab: MakeLab,
    start_task: StartTask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heartbeat, "WAITING_INTERVAL_S", 120.0)
    lab = make_lab({"one": ["a"]}, nodes={"a": {"heartbeat_timeout_s": 600}})
    a = lab.node("a")
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)) as worker:
        hold = JOURNAL.hold(f"holder-{lab.suffix}")
        holder = await start_task(lab, "one", {"hold": hold})
        await wait_until(lambda: JOURNAL.started(a, holder.id), what="the holder's step to run")
        waiting = await start_task(lab, "one")
        await wait_until(lambda: worker.host.gates[a].waiting, what="the second step in the node's line")
        await wait_until(lambda: _has_beaten(waiting), what="the waiting step's first heartbeat")

        await waiting.execute_update(TaskWorkflow.cancel, CommandRequest(reason="wrong plate", by="bob"))
        asked = time.monotonic()
        await waiting.cancel()
        closed = await wait_until(
            lambda: _closed(waiting), CANCEL_DEADLINE_S, "the waiting task to end cancelled"
        )
        took_s = time.monotonic() - asked
        assert worker.host.gates[a].waiting == []  # it left the line: nothing waits for the holder's end
        status = await waiting.query(TaskWorkflow.get_status)
        ledger = await ledger_handle(temporal_client, a).query(NodeWorkflow.status)
        JOURNAL.release(hold)
        assert (await holder.result()).state is TaskState.FINISHED

    assert closed.status is WorkflowExecutionStatus.CANCELED, f"after {took_s:.1f} s"
    assert status.state is TaskState.CANCELLED
    assert status.steps[0].outcome is StepOutcome.CANCELLED
    assert not JOURNAL.started(a, waiting.id)  # it never reached the driver
    assert ledger.withdrawn == {f"{waiting.id}/0": 1}  # the ledger refuses that run, should it ask
    history = await waiting.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled[-1] == WITHDRAW_WAITER
    keep("task-cancelled-while-waiting", history)
