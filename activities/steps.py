"""The step activity: wait for the node in its gate, record the use in its ledger (uses.py), run the
driver in the node's thread (what its run comes to: driving.py), and hand the node over to the next
waiter in the same ledger round trip."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from ..engine.contracts import EXECUTE_STEP, RUNNING, STEP_CANCELLED, STEP_FAILED, StepBeat
from ..engine.errors import DriverReturnedAfterCancelError, DriverStuckError
from ..engine.ledger import EndUse, UseKey
from ..engine.logger import NODE_LOGGERS, CapturedLines
from ..engine.models import StepResult
from ..engine.nodes import BaseNode
from ..engine.task_state import StepReport
from ..engine.tasks import StepRequest
from .driving import (
    cancelled_use,
    driver_outcome,
    driver_raised,
    end_of,
    next_execution,
    returned_after_cancel,
    within_output_limit,
)
from .heartbeat import Heartbeat
from .host import NodeHost
from .metrics import observe_cancel, observe_step
from .uses import NodeUses


class StepActivities:
    def __init__(self, host: NodeHost) -> None:
        self.host = host
        self.uses = NodeUses(host)

    @activity.defn(name=EXECUTE_STEP)
    async def execute_step(self, request: StepRequest) -> StepReport:
        node = self.host.node(request.step.runs_on.id)
        key = UseKey(
            task_id=request.task_id,
            step_index=request.step.index,
            run=request.run,
            attempt=activity.info().attempt,
        )
        async with Heartbeat(request.step.heartbeat_timeout_s) as beat:
            max_attempts = request.step.retry.max_attempts
            if request.held:  # it waited in each node's line while it took them (activities/holds.py)
                await self.uses.begin_held(node.id, key, beat, max_attempts, request.lost_run)
                waited_s = 0.0
            else:
                waited_s = await self.uses.acquire(
                    node.id,
                    key,
                    beat,
                    priority=request.priority,
                    requested_at=request.requested_at,
                    max_attempts=max_attempts,
                    lost_run=request.lost_run,
                )
            return await self._use(node, request, key, waited_s, beat)

    # --- using the node ----------------------------------------------------------------------------

    async def _use(
        self, node: BaseNode, request: StepRequest, key: UseKey, waited_s: float, beat: Heartbeat
    ) -> StepReport:
        report = StepReport(
            attempt=key.attempt, started_at=(started_at := datetime.now(UTC)), waited_s=waited_s
        )
        beat.set(self._running_beat(node, key, started_at))
        lines = CapturedLines()
        started = time.monotonic()
        try:
            result, stuck = await self._run(node, request, key, lines, started)
        except asyncio.CancelledError as cancel:
            if not (request.report_cancel and _cancel_requested()):
                raise
            raise _cancelled_while_running(node, request, report, lines, cancel) from None
        observe_step(node.id, time.monotonic() - started, waited_s, failed=not result.succeeded)
        report.next_execution = next_execution(node)
        # The node did its work (the ledger says so); an output too large to carry fails the step.
        kept = within_output_limit(node, request, result)
        if stuck is not None:
            await self._left_running(node, key, stuck, started)
        elif kept.succeeded and not request.held:
            self.uses.end_in_background(node.id, end_of(key, request, result, time.monotonic() - started))
        else:
            await self.uses.finish(node.id, end_of(key, request, result, time.monotonic() - started))
        result = kept
        _fill(report, result, lines)
        if not result.succeeded:
            failure = _failure_text(node, request, result)
            if result.traceback is None:  # a driver that raised was logged with its frames already
                _log(node).warning("%s", failure)
            raise ApplicationError(
                failure,
                report,
                type=STEP_FAILED,
                non_retryable=not result.retryable,
                # Logged above in the driver's words: the SDK's warning would show only our frames.
                category=ApplicationErrorCategory.BENIGN,
            )
        return report

    def _running_beat(self, node: BaseNode, key: UseKey, started_at: datetime) -> StepBeat:
        """Says a driver may be acting, should the beats stop; `next`: where the operator's "next" goes
        if this run is cut off (a lost run has no report)."""
        return StepBeat(
            phase=RUNNING,
            started_at=started_at,
            worker=self.host.worker.label if self.host.worker else None,
            attempt=key.attempt,
            next=next_execution(node).value,
        )

    async def _run(
        self, node: BaseNode, request: StepRequest, key: UseKey, lines: CapturedLines, started: float
    ) -> tuple[StepResult, DriverStuckError | None]:
        """The driver's result, or (its overrun) a failure and the driver call still running. A cancel
        is raised on, once the use's end is recorded."""
        try:
            return await self._drive(node, request, lines), None
        except DriverStuckError as stuck:
            if not activity.is_cancelled():  # the node's timeout: the step fails, for the operator
                return StepResult(status=-1, message=stuck.message, retryable=False), stuck
            await self._left_running(node, key, stuck, started)
            raise asyncio.CancelledError(stuck.message) from None
        except DriverReturnedAfterCancelError as returned:
            result = returned.result
            assert isinstance(result, StepResult)
            await self.uses.finish(node.id, returned_after_cancel(key, result, time.monotonic() - started))
            said = f"status {result.status}: {result.message or 'no message'}"
            raise asyncio.CancelledError(f"its driver, asked to abort, returned {said}") from None
        except asyncio.CancelledError:
            await self.uses.finish(node.id, cancelled_use(key, time.monotonic() - started))
            raise
        except Exception as exc:  # the node's timeout, or the scheduler's own: the step's failure
            return StepResult(status=-1, message=f"{type(exc).__name__}: {exc}"), None

    async def _drive(self, node: BaseNode, request: StepRequest, lines: CapturedLines) -> StepResult:
        """Run the driver in the node's thread, its lines captured (what it raised too)."""
        call = node.new_call(request.task_id)
        with node.logger.capture() as captured:
            step = functools.partial(
                node.run_step,
                request.src,
                request.dst,
                request.task_id,
                request.args,
                self.host.emulate,
                call,
                workflow_name=request.workflow_name,
                observer=self.host.observer(request),
            )
            future = self.host.in_driver_thread(node.id, step)
            try:
                return await driver_outcome(node, request, call, future)
            finally:
                lines.extend(captured.as_list())

    async def _left_running(
        self, node: BaseNode, key: UseKey, stuck: DriverStuckError, started: float
    ) -> None:
        """The driver did not stop when asked to: its use stays open in the ledger, the node closed in
        ERROR. Its end is recorded (late) when the driver returns; an operator then restarts the node."""
        end = EndUse(
            key=key,
            succeeded=False,
            final=True,
            driver_running=True,
            message=stuck.message,
            duration_s=time.monotonic() - started,
        )
        await self.uses.finish(node.id, end)
        late_end = asyncio.create_task(self._late_end(node, key, stuck.running, started))
        self.host.keep_stuck(node.id, late_end)

    async def _late_end(self, node: BaseNode, key: UseKey, running: Any, started: float) -> None:
        """The stuck driver returned at last: record the real end of its use (a late end, for the
        operator who decides about the device; the node stays in ERROR until restarted)."""
        try:
            result: StepResult = await running
        except Exception as exc:  # driver code
            step = f"step {key.step_index + 1} of task {key.task_id} (run {key.run}, given up)"
            result = driver_raised(node, step, exc)
        duration_s = time.monotonic() - started
        node.logger.warning(
            "its driver returned {:.1f} s after the step began: {}", duration_s, result.message
        )
        end = EndUse(
            key=key,
            succeeded=result.succeeded,
            message=result.message,
            status=result.status,
            duration_s=duration_s,
            ended_at=datetime.now(UTC),
        )
        await self.uses.end(node.id, end)


def _cancel_requested() -> bool:
    """Cancelled by its task (an operator cancelled it), not given up by the server or the worker."""
    details = activity.cancellation_details()
    return details is not None and details.cancel_requested


def _cancelled_while_running(
    node: BaseNode,
    request: StepRequest,
    report: StepReport,
    lines: CapturedLines,
    cancel: asyncio.CancelledError,
) -> ApplicationError:
    """The step was cancelled while its driver ran: the task records since when it ran, how its driver
    ended and the lines it logged (the end of the use is recorded in the ledger already). The task's
    record says who cancelled it (StepRecord.take_cancelled)."""
    how = str(cancel) or "its driver stopped when asked to abort"
    _fill(report, StepResult(status=-1, message=how), lines)
    report.next_execution = next_execution(node)
    assert report.started_at is not None and report.finished_at is not None
    ran_s = (report.finished_at - report.started_at).total_seconds()
    text = f"{_step_text(node, request)} was cancelled after {ran_s:.1f} s: {how}"
    _log(node).info("%s", text)
    observe_cancel(node.id)
    return ApplicationError(
        text, report, type=STEP_CANCELLED, non_retryable=True, category=ApplicationErrorCategory.BENIGN
    )


def _fill(report: StepReport, result: StepResult, lines: CapturedLines) -> None:
    report.status, report.message, report.endpoint = result.status, result.message, result.endpoint
    report.output, report.traceback = result.output, result.traceback
    report.logs = list(lines)
    report.finished_at = datetime.now(UTC)


def _step_text(node: BaseNode, request: StepRequest) -> str:
    return f"step {request.step.index + 1} on node {node.id}"


def _failure_text(node: BaseNode, request: StepRequest, result: StepResult) -> str:
    return f"{_step_text(node, request)} failed with status {result.status}: {result.message or 'no message'}"


def _log(node: BaseNode) -> logging.Logger:
    """The node's logger in the worker's log, not the step's lines: once the use is ended, the node's
    next step may be capturing its own (NodeLogger.capture)."""
    return logging.getLogger(f"{NODE_LOGGERS}.{node.id}")
