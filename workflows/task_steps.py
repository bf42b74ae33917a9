"""How a TaskWorkflow runs one step: what it asks of the step activity and with which options, and what
the activity's end means (a report, a failure, a run lost while waiting or cut off while running).

Workflow code (deterministic): it reads only what the activity's result or error carries.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeGuard

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, TimeoutError, TimeoutType
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from ..engine.contracts import (
        COMMAND_REFUSED,
        STEP_CANCELLED,
        STEP_FAILED,
        WAITING_INTERRUPTED,
        WORKER_LOST,
        StepBeat,
        node_task_queue,
    )
    from ..engine.errors import InvalidTransitionError
    from ..engine.models import NextExecution
    from ..engine.states import TaskState
    from ..engine.task_state import StepRecord, StepReport, TaskMemory
    from ..engine.tasks import StepRequest, TaskSpec, step_args

# The wait for the node counts in start-to-close; the node's own timeout is enforced by the worker.
STEP_START_TO_CLOSE = timedelta(days=30)


def step_request(spec: TaskSpec, memory: TaskMemory, record: StepRecord, now: datetime) -> StepRequest:
    """What the step activity is asked for this run of step `record.index`."""
    index, steps = record.index, spec.steps
    previous = memory.status.output_of(index - 1) if index else None
    return StepRequest(
        task_id=memory.status.task_id,
        step=steps[index],
        run=record.runs,
        priority=spec.priority,
        requested_at=record.requested_at or now,
        src=steps[index - 1].node if index else None,
        dst=steps[index + 1].node if index + 1 < len(steps) else None,
        args=step_args(spec, index, previous),
        lost_run=memory.lost_runs.get(index),
        workflow_name=spec.workflow_name,
        hooks=spec.hooks,
        report_cancel=True,
    )


def activity_options(spec: TaskSpec, record: StepRecord) -> dict[str, Any]:
    """The step activity's options: its node's queue, timeouts and retry policy, and an id and a summary
    that say in the Temporal UI which step and which run it is."""
    step = spec.steps[record.index]
    retry = step.retry
    return {
        "task_queue": node_task_queue(step.node.id),
        "activity_id": f"step-{record.index + 1}-{step.node.id}-run-{record.runs}",
        "summary": f"step {record.index + 1}/{len(spec.steps)}: {step.node.name} ({step.node.id})",
        "start_to_close_timeout": STEP_START_TO_CLOSE,
        "heartbeat_timeout": timedelta(seconds=step.heartbeat_timeout_s),
        "retry_policy": RetryPolicy(
            maximum_attempts=retry.max_attempts,
            initial_interval=timedelta(seconds=retry.initial_interval_s),
            backoff_coefficient=retry.backoff_coefficient,
            maximum_interval=timedelta(seconds=retry.maximum_interval_s),
            non_retryable_error_types=[WORKER_LOST, WAITING_INTERRUPTED],
        ),
        "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }


def lost_while_waiting(cause: BaseException | None) -> bool:
    """A step lost before it began (its worker died or stopped while it waited) runs again for free."""
    if isinstance(cause, ApplicationError) and cause.type == WAITING_INTERRUPTED:
        return True
    if isinstance(cause, TimeoutError) and cause.type is TimeoutType.HEARTBEAT:
        return not last_beat(cause).running
    return False


def is_worker_lost(cause: BaseException | None) -> TypeGuard[ApplicationError]:
    """An earlier run of the step began and never ended, or ended unreported: for the operator."""
    return isinstance(cause, ApplicationError) and cause.type == WORKER_LOST


def last_beat(cause: TimeoutError) -> StepBeat:
    details = cause.last_heartbeat_details
    return StepBeat.of(details[0] if details else None)


def next_execution(cause: BaseException | None, report: StepReport | None) -> NextExecution:
    """Where an operator's "next" goes after this failure: the node's answer in the step's report, or,
    for a run lost without one, in its last heartbeat or its WorkerLost error; NEXT if none says."""
    if report is not None:
        return report.next_execution
    said = StepBeat()
    if isinstance(cause, TimeoutError):
        said = last_beat(cause)
    elif isinstance(cause, ApplicationError) and cause.details:
        said = StepBeat.of(cause.details[0])
    given = str(said.next)
    return NextExecution(given) if given in NextExecution.__members__ else NextExecution.NEXT


def report_of(cause: BaseException | None) -> StepReport | None:
    """The report a failed (or cancelled) run carries: what its driver did, and when."""
    if isinstance(cause, ApplicationError) and cause.type in (STEP_FAILED, STEP_CANCELLED) and cause.details:
        return StepReport.model_validate(cause.details[0])
    return None


def cancelled_while_running(cause: BaseException | None) -> bool:
    """The task's cancel reached the step while its driver ran: its report says since when."""
    return isinstance(cause, ApplicationError) and cause.type == STEP_CANCELLED


def refusal(state: TaskState, command: str, reason: str | None = None) -> ApplicationError:
    """An operator's command the task cannot take in its state: the update is rejected unrecorded."""
    message = InvalidTransitionError("task", state.value, command, reason).message
    return ApplicationError(message, type=COMMAND_REFUSED, non_retryable=True)
