"""An operator's view of tasks that do not simply run through: a failed step and the continue that
follows (retry or next), cancel, pause, and the commands refused in the state the task is in."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from lab_fixtures import JOURNAL, MakeLab, StartTask, wait_until
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from task_scheduler import NodeState, TaskState
from task_scheduler.engine.contracts import node_workflow_id
from task_scheduler.engine.ledger import LedgerState
from task_scheduler.engine.task_state import CommandRequest, ContinueRequest, StepOutcome, TaskStatus
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.node import NodeWorkflow
from task_scheduler.workflows.search_attributes import TASK_STATE
from task_scheduler.workflows.task import TaskWorkflow

RESULT_TIMEOUT_S = 30


async def status_of(handle: WorkflowHandle[Any, Any]) -> TaskStatus:
    return await handle.query(TaskWorkflow.get_status)


async def reaches(handle: WorkflowHandle[Any, Any], state: TaskState) -> TaskStatus:
    async def probe() -> TaskStatus | None:
        status = await status_of(handle)
        return status if status.state is state else None

    return await wait_until(probe, what=f"task {handle.id} to be {state.value}")


async def ledger_of(client: Client, node_id: str) -> LedgerState:
    return await client.get_workflow_handle(node_workflow_id(node_id)).query(NodeWorkflow.status)


async def ledger_once_idle(client: Client, node_id: str) -> LedgerState:
    """The ledger once no use is held: a step that succeeded returns before its end of use is recorded
    (within about a second, or with the node's next begin)."""

    async def idle() -> LedgerState | None:
        ledger = await ledger_of(client, node_id)
        return ledger if ledger.holder is None else None

    return await wait_until(idle, what=f"node {node_id} to be released")


async def test_failed_step_stops_the_task_in_error_and_retry_runs_it_again(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"three": ["a", "b", "c"]})
    b = lab.node("b")
    JOURNAL.fail_next(b)
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "three")
        status = await reaches(handle, TaskState.ERROR)
        assert "step 2" in (status.reason or "") and "failed on purpose" in (status.reason or "")
        assert status.steps[1].outcome is StepOutcome.FAILED and status.steps[1].status == 1
        assert not JOURNAL.started(lab.node("c"), handle.id)
        ledger = await ledger_of(temporal_client, b)
        assert ledger.state is NodeState.ERROR and "failed on purpose" in (ledger.reason or "")

        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="retry"))
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
        status = await status_of(handle)
        ledger = await ledger_once_idle(temporal_client, b)

    assert result.state is TaskState.FINISHED
    assert JOURNAL.restarts[b] == 1
    assert len(JOURNAL.runs(b, handle.id)) == 2
    assert status.steps[1].outcome is StepOutcome.SUCCEEDED and status.steps[1].runs == 2
    assert result.outputs[1] == {"node": b, "seen": 1}
    assert ledger.state is NodeState.AVAILABLE and ledger.holder is None
    assert (ledger.stats.failures, ledger.stats.successes, ledger.restarts) == (1, 1, 1)


async def test_continue_next_skips_the_failed_step(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"three": ["a", "b", "c"]})
    JOURNAL.fail_next(lab.node("b"))
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "three")
        await reaches(handle, TaskState.ERROR)
        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="next"))
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
        status = await status_of(handle)

    assert result.state is TaskState.FINISHED
    assert [s.outcome for s in status.steps] == [
        StepOutcome.SUCCEEDED,
        StepOutcome.SKIPPED,
        StepOutcome.SUCCEEDED,
    ]
    assert len(JOURNAL.runs(lab.node("b"), handle.id)) == 1
    assert result.outputs[1] == {}
    (last,) = JOURNAL.runs(lab.node("c"), handle.id)
    assert "previous_output" not in last.args  # the step before it was skipped: it returned nothing


async def test_cancel_aborts_the_running_step_and_frees_the_node(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"one": ["a"]})
    a = lab.node("a")
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)) as worker:
        running = await start_task(lab, "one", {"hold": JOURNAL.hold(f"never-{lab.suffix}")})
        await wait_until(lambda: JOURNAL.started(a, running.id), what="the step to run")
        waiting = await start_task(lab, "one")
        await wait_until(lambda: worker.host.gates[a].waiting, what="the second task to wait for the node")

        cancel = CommandRequest(reason="wrong plate", by="alice")
        await running.execute_update(TaskWorkflow.cancel, cancel)
        asked = time.monotonic()
        await running.cancel()
        await wait_until(lambda: JOURNAL.aborts[a] == 1, what="the driver's _abort()")
        abort_latency_s = time.monotonic() - asked
        described = await wait_until(
            lambda: _closed(running), what="the cancelled task to close", timeout_s=RESULT_TIMEOUT_S
        )
        status = await status_of(running)
        result = await asyncio.wait_for(waiting.result(), RESULT_TIMEOUT_S)
        ledger = await ledger_once_idle(temporal_client, a)

    assert abort_latency_s < 5, f"the driver was asked to abort {abort_latency_s:.1f} s after the cancel"
    assert described.status is WorkflowExecutionStatus.CANCELED
    assert described.typed_search_attributes.get(TASK_STATE) == "CANCELLED"
    assert status.state is TaskState.CANCELLED
    assert status.reason == "cancelled by alice: wrong plate"
    cancelled = status.steps[0]
    assert cancelled.outcome is StepOutcome.CANCELLED
    # It ran, and the record says from when to when: the timeline draws its run bar.
    assert cancelled.started_at is not None and cancelled.finished_at is not None
    assert cancelled.started_at < cancelled.finished_at and cancelled.attempts == 1
    assert (cancelled.message or "").startswith("cancelled by alice after ")
    (aborted,) = JOURNAL.runs(a, running.id)
    assert aborted.aborted
    assert result.state is TaskState.FINISHED
    assert ledger.state is NodeState.AVAILABLE and ledger.holder is None


async def _closed(handle: WorkflowHandle[Any, Any]) -> Any:
    description = await handle.describe()
    return description if description.status is not WorkflowExecutionStatus.RUNNING else None


async def test_pause_takes_effect_after_the_current_step(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"two": ["a", "b"]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        hold = JOURNAL.hold(f"pause-{lab.suffix}")  # step 2 finds it released and goes through
        handle = await start_task(lab, "two", {"hold": hold})
        await wait_until(lambda: JOURNAL.started(lab.node("a"), handle.id), what="step 1 to run")
        asked = await handle.execute_update(TaskWorkflow.pause, CommandRequest(by="bob"))
        assert asked.pause_requested and asked.state is TaskState.ACTIVE
        JOURNAL.release(hold)

        status = await reaches(handle, TaskState.PAUSED)
        assert status.steps[0].outcome is StepOutcome.SUCCEEDED
        assert status.steps[1].outcome is StepOutcome.PENDING
        assert (await handle.describe()).typed_search_attributes.get(TASK_STATE) == "PAUSED"
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(TaskWorkflow.pause, CommandRequest())
        assert _message(refused.value) == "cannot pause a task that is PAUSED"
        assert not JOURNAL.started(lab.node("b"), handle.id)

        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest())
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)

    assert result.state is TaskState.FINISHED
    assert len(JOURNAL.runs(lab.node("b"), handle.id)) == 1


async def test_continue_of_an_active_task_is_refused(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"one": ["a"]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        hold = JOURNAL.hold(f"active-{lab.suffix}")
        handle = await start_task(lab, "one", {"hold": hold})
        await wait_until(lambda: JOURNAL.started(lab.node("a"), handle.id), what="the step to run")

        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="retry"))
        assert _message(refused.value) == "cannot continue a task that is ACTIVE"
        JOURNAL.release(hold)
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)

    assert result.state is TaskState.FINISHED
    # Refused by the validator: the update left no trace in the task's history.
    history = await handle.fetch_history()
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED not in [
        e.event_type for e in history.events
    ]


def _message(error: WorkflowUpdateFailedError) -> str:
    assert isinstance(error.cause, ApplicationError)
    return error.cause.message


async def test_cancel_of_a_waiting_task_leaves_the_node_to_the_others(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    # A waiting step learns of its cancellation at its next heartbeat: every second here, not every 10 s.
    lab = make_lab({"one": ["a"]}, nodes={"a": {"heartbeat_timeout_s": 3}})
    a = lab.node("a")
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)) as worker:
        hold = JOURNAL.hold(f"busy-{lab.suffix}")
        running = await start_task(lab, "one", {"hold": hold})
        await wait_until(lambda: JOURNAL.started(a, running.id), what="the step to run")
        gate = worker.host.gates[a]
        cancelled = await start_task(lab, "one")
        await wait_until(lambda: len(gate.waiting) == 1, what="a task waiting for the node")
        last = await start_task(lab, "one")
        await wait_until(lambda: len(gate.waiting) == 2, what="two tasks waiting for the node")

        await cancelled.execute_update(TaskWorkflow.cancel, CommandRequest(reason="not needed"))
        await cancelled.cancel()
        await wait_until(lambda: _closed(cancelled), what="the waiting task to be cancelled")
        assert len(gate.waiting) == 1
        JOURNAL.release(hold)
        results = await asyncio.wait_for(asyncio.gather(running.result(), last.result()), RESULT_TIMEOUT_S)
        status = await status_of(cancelled)

    assert [r.state for r in results] == [TaskState.FINISHED] * 2
    assert status.state is TaskState.CANCELLED and status.steps[0].outcome is StepOutcome.CANCELLED
    assert not JOURNAL.started(a, cancelled.id)
    assert JOURNAL.aborts[a] == 0


async def test_step_past_its_node_timeout_is_aborted_and_stops_the_task(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"one": ["a"]}, nodes={"a": {"timeout_s": 0.2}})
    a = lab.node("a")
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "one", {"hold": JOURNAL.hold(f"stuck-{lab.suffix}")})
        status = await reaches(handle, TaskState.ERROR)
        ledger = await ledger_of(temporal_client, a)
        await handle.cancel()

    assert JOURNAL.aborts[a] == 1
    assert "step 1" in (status.reason or "") and "timeout of 0.2 s" in (status.reason or "")
    assert status.steps[0].outcome is StepOutcome.FAILED
    assert ledger.state is NodeState.ERROR


async def test_a_driver_returning_3_mib_fails_its_step_cleanly_and_the_task_goes_on_after_next(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"big": [{"node": "a", "args": {"output_bytes": 3 * 1024 * 1024}}, "b"]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "big")
        stopped = await reaches(handle, TaskState.ERROR)
        step = stopped.steps[0]
        assert step.outcome is StepOutcome.FAILED
        assert "bytes as JSON; at most 262144 are kept" in (step.message or "")
        assert step.output == {}
        assert JOURNAL.runs(lab.node("a"), handle.id)  # the driver did run: the device did its work
        node = await temporal_client.get_workflow_handle_for(
            NodeWorkflow.run, node_workflow_id(lab.node("a"))
        ).query(NodeWorkflow.status)
        assert node.state is NodeState.AVAILABLE  # nothing wrong with the device

        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="next"))
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)

    assert result.state is TaskState.FINISHED
    assert result.outputs[0] == {}


async def test_a_retried_step_goes_first_after_the_restart_even_before_a_higher_priority_waiter(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    """The operator retries a failed step: the node is restarted and kept for that step, so a task
    that waited meanwhile (here with a higher priority, which the node's line would put first) does
    not use the device between the operator's check and the retry."""
    lab = make_lab({"one": ["a"]})
    a = lab.node("a")
    JOURNAL.fail_next(a)
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)) as worker:
        failed = await start_task(lab, "one", {"sleep_s": 0.05})
        await reaches(failed, TaskState.ERROR)
        urgent = await start_task(lab, "one", {"sleep_s": 0.05}, priority=5)
        await wait_until(lambda: worker.host.gates[a].waiting, what="the urgent task to wait for the node")

        await failed.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="retry", by="operator"))
        results = await asyncio.wait_for(asyncio.gather(failed.result(), urgent.result()), RESULT_TIMEOUT_S)
        ledger = await ledger_once_idle(temporal_client, a)

    assert [r.state for r in results] == [TaskState.FINISHED, TaskState.FINISHED]
    retry = JOURNAL.runs(a, failed.id)[-1]
    (after,) = JOURNAL.runs(a, urgent.id)
    assert retry.ended <= after.started, "the waiting task used the node before the operator's retry"
    assert ledger.kept_for is None and ledger.restarts == 1
