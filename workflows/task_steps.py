"""How a TaskWorkflow runs one step: what it asks of the step activity and with which options, and what
the activity's end means (a report, a failure, a run lost while waiting or cut off while running).

Workflow code (deterministic): it reads only what the activity's result or error carries.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from ..engine.contracts import (
        COMMAND_REFUSED,
        EXECUTE_STEP,
        STEP_CANCELLED,
        STEP_FAILED,
        WAITING_INTERRUPTED,
        WITHDRAW_WAITER,
        WORKER_LOST,
        WORKER_REPLACED,
        StepBeat,
        WaiterWithdrawal,
        node_task_queue,
        step_activity_id,
    )
    from ..engine.errors import InvalidTransitionError
    from ..engine.ledger import UseKey
    from ..engine.models import NextExecution
    from ..engine.protocol import Protocol
    from ..engine.states import TaskState
    from ..engine.task_state import StepRecord, StepReport, TaskMemory
    from ..engine.tasks import StepRequest, TaskSpec, step_args
    from .node import NodeWorkflow, signal_ledger

# The wait for the node counts in start-to-close; the node's own timeout is enforced by the worker.
STEP_START_TO_CLOSE = timedelta(days=30)
# A task cancelled while its step's activity is pending withdraws the run from its node's line: the
# ledger refuses it, and the worker hosting the node has it heartbeat at once to hear of the cancel.
WITHDRAW_ON_CANCEL = "withdraw-on-cancel"
WITHDRAWAL_TIMEOUT = timedelta(seconds=30)
CUT_OFF_WHEN_REPLACED = "cut-off-when-worker-replaced"


async def execute_step(
    spec: TaskSpec, memory: TaskMemory, record: StepRecord, protocol: Protocol, held: bool = False
) -> StepReport:
    """Run this run of step `record.index` on its node. A cancel of the task reaches the step as always
    (Temporal requests the activity's cancel, and the task waits until the step is done); a step that
    waits for its node would hear of it only at its next heartbeat (up to 10 s), so the run is withdrawn
    from the node's line meanwhile, and hears of it at once."""
    withdrawal = _Withdrawal(memory.status.task_id, record)
    watch = asyncio.create_task(withdrawal.when_cancelled())
    # Not `finally`: a workflow evicted from the worker's cache is closed where it waits, and must not
    # wait again on its way out.
    try:
        report: StepReport = await workflow.execute_activity(
            EXECUTE_STEP,
            step_request(spec, memory, record, workflow.now(), protocol, held),
            result_type=StepReport,
            **activity_options(spec, record),
        )
    except (ActivityError, asyncio.CancelledError):
        await withdrawal.settle(watch)
        raise
    await withdrawal.settle(watch)
    return report


class _Withdrawal:
    """The withdrawal of a step's run from its node's line, once its task is cancelled: new commands
    (WITHDRAW_ON_CANCEL), and a wait with no command of its own until then, so histories recorded before
    replay as they were."""

    def __init__(self, task_id: str, record: StepRecord) -> None:
        assert record.node is not None  # only a step on a node has an activity
        self.node_id = record.node
        self.key = UseKey(task_id=task_id, step_index=record.index, run=record.runs)
        self.started = False

    async def when_cancelled(self) -> None:
        await workflow.wait_condition(lambda: workflow.cancellation_reason() is not None)
        if not workflow.patched(WITHDRAW_ON_CANCEL):
            return
        self.started = True
        # The worker first: the cancel reaches a waiting step in the answer to the heartbeat it asks for.
        push = workflow.start_activity(
            WITHDRAW_WAITER,
            WaiterWithdrawal(node_id=self.node_id, key=self.key),
            result_type=bool,
            task_queue=node_task_queue(self.node_id),
            schedule_to_close_timeout=WITHDRAWAL_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
            summary=f"withdraw {self.key} from the line of {self.node_id}",
        )
        # Not awaited: the task waits for its step, not for this (its node's worker may be gone).
        push.add_done_callback(_said_if_failed)
        # The ledger too: a begin already on its way, or a waiter in a worker the first did not reach, is
        # refused and never reaches the driver.
        await signal_ledger(self.node_id, NodeWorkflow.withdraw_run, self.key)

    async def settle(self, watch: asyncio.Task[None]) -> None:
        """The step's activity is done: a withdrawal under way is finished (a signal not sent before the
        task closes is never sent); one not begun is dropped, with no command."""
        if self.started or watch.done():
            await watch
            return
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch


def _said_if_failed(done: asyncio.Future[bool]) -> None:
    """A withdrawal that failed is logged: the ledger's refusal, or the step's heartbeat, still stops it."""
    if not done.cancelled() and done.exception() is not None:
        workflow.logger.info("the waiter's withdrawal failed: %s", done.exception())


def step_request(
    spec: TaskSpec,
    memory: TaskMemory,
    record: StepRecord,
    now: datetime,
    protocol: Protocol,
    held: bool = False,
) -> StepRequest:
    """What the step activity is asked for this run of step `record.index`: its neighbours (`src`, `dst`:
    the node of the one step it comes after, and of the one that comes after it) and the outputs of the
    steps it comes after."""
    index, steps = record.index, spec.steps
    step = protocol.steps[index]
    before = [protocol.step(b).index for b in step.after]
    after = [protocol.step(s).index for s in protocol.successors(step.id)]
    return StepRequest(
        task_id=memory.status.task_id,
        step=steps[index],
        run=record.runs,
        priority=spec.priority,
        requested_at=record.requested_at or now,
        src=steps[before[0]].node if len(before) == 1 else None,
        dst=steps[after[0]].node if len(after) == 1 else None,
        args=step_args(spec, index, {steps[b].step_id: memory.status.output_of(b) for b in before}),
        lost_run=memory.lost_runs.get(index),
        workflow_name=spec.workflow_name,
        hooks=spec.hooks,
        report_cancel=True,
        held=held,
    )


def activity_options(spec: TaskSpec, record: StepRecord) -> dict[str, Any]:
    """The step activity's options: its node's queue, timeouts and retry policy, and an id and a summary
    that say in the Temporal UI which step and which run it is."""
    step = spec.steps[record.index]
    node, retry = step.runs_on, step.retry
    named = f" {step.id}" if step.id is not None else ""
    return {
        "task_queue": node_task_queue(node.id),
        "activity_id": step_activity_id(record.index, node.id, record.runs),
        "summary": f"step {record.index + 1}/{len(spec.steps)}{named}: {node.name} ({node.id})",
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


def cut_off_beat(cause: BaseException | None) -> StepBeat | None:
    """The last heartbeat of a run cut off, whose driver may have been acting: its heartbeats stopped
    (a timeout), or the worker process that ran it is gone, as the one now hosting its node found when it
    started (WorkerReplaced: known at once, not a heartbeat timeout later). None: not cut off."""
    if isinstance(cause, TimeoutError):
        return last_beat(cause)
    replaced = isinstance(cause, ApplicationError) and cause.type == WORKER_REPLACED
    # Patched: a task that met such a failure before this code took it for the step's own failure.
    if replaced and workflow.patched(CUT_OFF_WHEN_REPLACED):
        assert isinstance(cause, ApplicationError)
        return last_beat(cause)
    return None


def last_beat(cause: TimeoutError | ApplicationError) -> StepBeat:
    """The run's last heartbeat: in a heartbeat timeout, or in a WorkerReplaced failure's details."""
    details = cause.last_heartbeat_details if isinstance(cause, TimeoutError) else cause.details
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
