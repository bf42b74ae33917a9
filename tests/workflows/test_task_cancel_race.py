"""Cancel racing the end of a step: the driver finishes before the step hears of the cancel. The SDK
then hands the workflow the step's result and erases the cancellation; the task must still stop
before its next step, and end cancelled, not run on to FINISHED (found by the API fuzz test)."""

from __future__ import annotations

from typing import Any

from lab_fixtures import JOURNAL, MakeLab, StartTask, wait_until
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus, WorkflowHandle

from task_scheduler import TaskState
from task_scheduler.engine.task_state import CommandRequest, StepOutcome
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.task import TaskWorkflow


async def _closed(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionDescription | None:
    description = await handle.describe()
    return None if description.status is WorkflowExecutionStatus.RUNNING else description


async def test_cancel_reaching_a_step_that_finishes_anyway_stops_the_task_before_the_next_step(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"two": ["a", "b"]})
    a, b = lab.node("a"), lab.node("b")
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        hold = JOURNAL.hold(f"race-{lab.suffix}")
        handle = await start_task(lab, "two", {"hold": hold})
        await wait_until(lambda: JOURNAL.started(a, handle.id), what="the first step to run")

        await handle.execute_update(TaskWorkflow.cancel, CommandRequest(reason="wrong plate"))
        await handle.cancel()
        # The driver returns within milliseconds: the step learns of the cancel only at its next
        # heartbeat (every second), so it nearly always completes successfully first.
        JOURNAL.release(hold)
        described = await wait_until(lambda: _closed(handle), what="the task to close", timeout_s=30)
        status = await handle.query(TaskWorkflow.get_status)

    assert described.status is WorkflowExecutionStatus.CANCELED
    assert status.state is TaskState.CANCELLED
    assert status.reason == "cancelled by an operator: wrong plate"
    assert status.steps[0].outcome in (StepOutcome.SUCCEEDED, StepOutcome.CANCELLED)
    assert status.steps[1].outcome is StepOutcome.PENDING
    assert not JOURNAL.started(b, handle.id)
