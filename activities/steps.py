"""The step activity: wait for the node in its gate, record the use in its ledger, run the driver in
the node's thread, and hand the node over to the next waiter in the same ledger round trip."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from ..engine.contracts import (
    BEGIN_USE,
    END_USE,
    EXECUTE_STEP,
    LEDGER_REFUSAL,
    RUNNING,
    STEP_CANCELLED,
    STEP_FAILED,
    WAITING,
    WAITING_INTERRUPTED,
    WORKER_LOST,
    StepBeat,
)
from ..engine.errors import DriverReturnedAfterCancelError, DriverStuckError, StepTimeoutError
from ..engine.ledger import BeginUse, BeginVerdict, EndUse, UseKey, step_of
from ..engine.logger import CapturedLines
from ..engine.models import NextExecution, StepResult
from ..engine.nodes import BaseNode, CallState, DriverCall
from ..engine.task_state import StepReport
from ..engine.tasks import StepRequest
from .gate import NodeGate, Waiter
from .heartbeat import Heartbeat
from .host import NodeHost
from .ledger_client import LedgerClient
from .metrics import observe_step

REFUSED_RETRY_S = 1.0


class StepActivities:
    def __init__(self, host: NodeHost) -> None:
        self.host = host
        self.ledgers = LedgerClient(host.client, host.workflow_task_queue)

    @activity.defn(name=EXECUTE_STEP)
    async def execute_step(self, request: StepRequest) -> StepReport:
        node = self.host.node(request.step.node.id)
        key = UseKey(
            task_id=request.task_id,
            step_index=request.step.index,
            run=request.run,
            attempt=activity.info().attempt,
        )
        async with Heartbeat(request.step.heartbeat_timeout_s) as beat:
            waited_s = await self._acquire(node.id, request, key, beat)
            return await self._use(node, request, key, waited_s, beat)

    # --- waiting for the node ----------------------------------------------------------------------

    async def _acquire(self, node_id: str, request: StepRequest, key: UseKey, beat: Heartbeat) -> float:
        gate = self.host.gates[node_id]
        entered = time.monotonic()
        waiter = gate.enter(str(key), request.priority, request.requested_at, step=step_of(key))
        refusal: str | None = None  # the ledger's last word, said in every heartbeat until it is granted
        try:
            while True:
                close = await self._wait_turn(gate, waiter, beat, refusal)
                begin = BeginUse(
                    key=key,
                    waited_s=time.monotonic() - entered,
                    max_attempts=request.step.retry.max_attempts,
                    close=close,
                    lost_run=request.lost_run,
                    worker=self.host.worker,
                )
                refusal = await self._begin(node_id, gate, waiter, begin)
                if refusal is None:
                    return begin.waited_s
                beat.set(_waiting_beat(gate, waiter, refusal))
                await asyncio.sleep(REFUSED_RETRY_S)
                gate.readmit()
        except BaseException:
            await self._abandon_turn(node_id, gate, waiter, key)
            raise

    async def _wait_turn(
        self, gate: NodeGate, waiter: Waiter, beat: Heartbeat, refusal: str | None
    ) -> EndUse | None:
        while not waiter.turn.done():
            beat.set(_waiting_beat(gate, waiter, refusal))
            if activity.is_worker_shutdown():
                raise ApplicationError(
                    "the worker hosting the node is shutting down",
                    type=WAITING_INTERRUPTED,
                    non_retryable=True,
                )
            await asyncio.wait({waiter.turn}, timeout=1.0)
        return waiter.turn.result()

    async def _begin(self, node_id: str, gate: NodeGate, waiter: Waiter, begin: BeginUse) -> str | None:
        """Record the start of use (and the end of the use handed over); the ledger's refusal or None."""
        try:
            verdict = await self.ledgers.update(node_id, BEGIN_USE, begin, BeginVerdict)
        except WorkflowUpdateFailedError as exc:
            if not _is_refusal(exc):
                raise
            await self._flush_close(node_id, waiter)
            gate.step_back(waiter)
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], str):
                gate.prefer(cause.details[0])  # the node is kept for that step: it goes first when it comes
            return str(cause.message if isinstance(cause, ApplicationError) else exc)
        _resolve(waiter.handed_close)
        waiter.handed_close = None
        # A lost run has no report: where the operator's "next" goes is said here (the node's answer).
        lost = {"next": _next_execution(self.host.node(node_id)).value}
        if verdict is BeginVerdict.LOST_PREVIOUS:
            raise ApplicationError(
                f"worker lost during step {begin.key.step_index + 1}: its earlier run began on node "
                f"{node_id} and never ended; an operator must check the node and continue the task",
                lost,
                type=WORKER_LOST,
                non_retryable=True,
            )
        if verdict is BeginVerdict.RAN_BEFORE:
            raise ApplicationError(
                f"worker lost during step {begin.key.step_index + 1}: its earlier run used node {node_id} "
                "to the end, but its outcome never reached the task; an operator must check the step's "
                "result and continue the task (next if it was done, retry if not)",
                lost,
                type=WORKER_LOST,
                non_retryable=True,
            )
        return None

    async def _flush_close(self, node_id: str, waiter: Waiter) -> None:
        """The use handed to this waiter must be recorded as ended even if this waiter cannot begin."""
        turn = waiter.turn
        close = turn.result() if turn.done() and not turn.cancelled() else None
        if close is not None and waiter.handed_close is not None and not waiter.handed_close.done():
            try:
                await self._end(node_id, close)
            finally:
                _resolve(waiter.handed_close)

    async def _abandon_turn(self, node_id: str, gate: NodeGate, waiter: Waiter, key: UseKey) -> None:
        """Leave the gate. If this step had its turn, its begin may have reached the ledger (a cancel can
        land while the update is in flight): record that the use ended before the driver started; the
        ledger ignores the end of a use it never granted."""
        gate.leave(waiter)
        if waiter.turn.done() and not waiter.turn.cancelled():
            never_ran = EndUse(
                key=key, succeeded=False, final=False, message="left before the driver started"
            )
            try:
                await asyncio.shield(self._flush_close(node_id, waiter))
                await asyncio.shield(self._end(node_id, never_ran))
            finally:
                gate.release(None)

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
            raise _cancelled_while_running(node, report, lines, cancel) from None
        observe_step(node.id, time.monotonic() - started, waited_s, failed=not result.succeeded)
        report.next_execution = _next_execution(node)
        # The node did its work (the ledger says so); an output too large to carry fails the step.
        kept = _within_output_limit(node, request, result)
        if stuck is not None:
            await self._left_running(node, key, stuck, started)
        elif kept.succeeded:
            self._end_in_background(node.id, _end_of(key, request, result, time.monotonic() - started))
        else:
            await self._finish(node.id, _end_of(key, request, result, time.monotonic() - started))
        result = kept
        _fill(report, result, lines)
        if not result.succeeded:
            raise ApplicationError(
                _failure_text(node, request, result),
                report,
                type=STEP_FAILED,
                non_retryable=not result.retryable,
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
            next=_next_execution(node).value,
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
            assert isinstance(returned.result, StepResult)
            end = _returned_after_cancel(key, returned.result, time.monotonic() - started)
            await self._finish(node.id, end)
            raise asyncio.CancelledError(end.message) from None
        except asyncio.CancelledError:
            await self._finish(node.id, _cancelled_use(key, time.monotonic() - started))
            raise
        except Exception as exc:  # the driver may raise anything: it becomes the step's failure
            return StepResult(status=-1, message=f"{type(exc).__name__}: {exc}"), None

    async def _drive(self, node: BaseNode, request: StepRequest, lines: CapturedLines) -> StepResult:
        """Run the driver in the node's thread; enforce the node's timeout; pass cancellation to it."""
        call = node.new_call(request.task_id)
        grace_s = request.step.abort_grace_s
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
                return await asyncio.wait_for(asyncio.shield(future), timeout=request.step.timeout_s)
            except TimeoutError:
                await _abort_and_wait(node, call, future, grace_s)
                raise StepTimeoutError(
                    f"node {node.id} did not finish within its timeout of {request.step.timeout_s} s; "
                    "it was asked to abort"
                ) from None
            except asyncio.CancelledError:
                returned = await _abort_and_wait(node, call, future, grace_s)
                if returned is not None:  # it finished all the same: what it did is the use's end
                    raise DriverReturnedAfterCancelError(returned) from None
                raise
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
        await self._finish(node.id, end)
        late_end = asyncio.create_task(self._late_end(node, key, stuck.running, started))
        self.host.keep_stuck(node.id, late_end)

    async def _late_end(self, node: BaseNode, key: UseKey, running: Any, started: float) -> None:
        """The stuck driver returned at last: record the real end of its use (a late end, for the
        operator who decides about the device; the node stays in ERROR until restarted)."""
        try:
            result: StepResult = await running
        except Exception as exc:  # driver code
            result = StepResult(status=-1, message=f"{type(exc).__name__}: {exc}")
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
        await self._end(node.id, end)

    def _end_in_background(self, node_id: str, end: EndUse) -> None:
        """A step that succeeded returns at once: the end of its use goes with the next step's begin on
        the node (a waiter's now, or one that comes within FLUSH_S), or alone after FLUSH_S, without
        holding the step's completion back. A worker killed before it arrives leaves the use open in
        the ledger; the task's record of the step (SUCCEEDED) proves it ended (`recovery.ended_use`)."""
        gate = self.host.gates[node_id]
        if gate.hand_over(end) is not None:
            return  # the waiter's begin records it, or its own flush if it cannot begin (_flush_close)
        gate.defer(end)
        self.host.keep_ending(node_id, asyncio.create_task(self._flush_later(node_id, gate)))

    async def _flush_later(self, node_id: str, gate: NodeGate) -> None:
        await self.host.flush_due()
        end = gate.take_pending()
        if end is None:
            return  # a step's begin carried it
        try:
            await self._end(node_id, end)
        finally:
            gate.release(None)

    async def _finish(self, node_id: str, end: EndUse) -> None:
        """Make sure the end of use is recorded: by the next waiter's begin (a hand-over), or here."""
        gate = self.host.gates[node_id]
        handed = gate.hand_over(end) if end.succeeded or not end.final else None
        if handed is not None:
            await asyncio.shield(handed)
            return
        try:
            await asyncio.shield(self._end(node_id, end))
        finally:
            # Opened only now: a step admitted while the end is on its way would begin while the ledger
            # still names this holder, be refused, and wait REFUSED_RETRY_S (a pipeline hits this often).
            gate.release(None)

    async def _end(self, node_id: str, end: EndUse) -> None:
        """The end of a use is the record that lets the node be used again (or, for a run given up as
        cut off, what the operator decides on): it is sent until it arrives, even after a cancel."""
        await self.ledgers.update(node_id, END_USE, end, bool, persist=True)


def _within_output_limit(node: BaseNode, request: StepRequest, result: StepResult) -> StepResult:
    limit = request.step.max_output_bytes
    size = len(json.dumps(result.output, default=str).encode()) if result.output else 0
    if size <= limit:
        return result
    message = (
        f"node {node.id} returned an output of {size} bytes as JSON; at most {limit} are kept "
        f"(max_output_bytes in nodes.json). The driver's message: {result.message or 'none'}. Return "
        "less (a file path or a reference instead of the data), or raise the node's limit"
    )
    node.logger.error("{}", message)
    return StepResult(status=-1, message=message, endpoint=result.endpoint, retryable=False)


def _end_of(key: UseKey, request: StepRequest, result: StepResult, duration_s: float) -> EndUse:
    final = not result.retryable or key.attempt >= request.step.retry.max_attempts
    return EndUse(
        key=key,
        succeeded=result.succeeded,
        final=final,
        message=result.message,
        duration_s=duration_s,
        status=result.status,
        ended_at=datetime.now(UTC),
    )


def _returned_after_cancel(key: UseKey, result: StepResult, duration_s: float) -> EndUse:
    """The end of a use whose step was given up while its driver ran, and whose driver returned all
    the same (it finished, or stopped when asked): what it reports, and why the step was given up."""
    cancelled = _cancelled_use(key, duration_s)
    why = cancelled.message
    return EndUse(
        key=key,
        succeeded=result.succeeded,
        final=cancelled.final,  # its task gone: a failure puts the node in ERROR, nobody will decide
        status=result.status,
        message=f"{result.message or 'no message'} (the step had been given up: {why})",
        duration_s=duration_s,
        ended_at=datetime.now(UTC),
    )


def _cancelled_use(key: UseKey, duration_s: float) -> EndUse:
    """The end of a use whose driver was aborted. Cancelled by an operator, the node is free again;
    because its task no longer exists (terminated), nobody will decide about the cut-off action, so
    the node goes to ERROR, as the ledger's holder check would put it."""
    details = activity.cancellation_details()
    if details is not None and details.timed_out:
        message = (
            "the server gave the step up (its heartbeats stopped arriving: the link was cut?); the "
            "driver was asked to abort when the worker heard of it"
        )
        return EndUse(key=key, succeeded=False, final=False, message=message, duration_s=duration_s)
    if details is not None and details.not_found:
        message = "its task no longer runs (terminated?); the driver was aborted mid-step: check the device"
        return EndUse(key=key, succeeded=False, final=True, message=message, duration_s=duration_s)
    return EndUse(key=key, succeeded=False, final=False, message="cancelled", duration_s=duration_s)


async def _abort_and_wait(
    node: BaseNode, call: DriverCall, future: asyncio.Future[Any], grace_s: float
) -> StepResult | None:
    """Ask the call to stop, and give its driver `grace_s` to return; its result if it returned one. A
    call that had not reached the driver is withdrawn: it never will. A driver still running after the
    grace: DriverStuckError."""
    asked = time.monotonic()
    # In another thread: the node's own runs the driver; a driver's `_abort()` that hangs counts in the grace.
    asking = asyncio.ensure_future(asyncio.to_thread(call.abort))
    await asyncio.wait({asking}, timeout=grace_s)
    if asking.done() and asking.result() is CallState.QUEUED:
        node.logger.info("the step of task {} was withdrawn before it reached the driver", call.task_id)
        return None
    remaining = max(0.0, grace_s - (time.monotonic() - asked))
    done, _ = await asyncio.wait({future}, timeout=remaining)
    if not done:
        message = (
            f"node {node.id}: its driver did not stop within {grace_s:g} s of the abort; check the "
            "device. The node stays closed until the driver returns (or its worker is restarted); "
            "then restart the node"
        )
        node.logger.error("{}", message)
        raise DriverStuckError(message, running=future)
    if future.cancelled():
        return None
    if future.exception() is not None:
        node.logger.info("driver stopped: {}", future.exception())
        return None
    result: StepResult = future.result()
    return result


def _cancel_requested() -> bool:
    """Cancelled by its task (an operator cancelled it), not given up by the server or the worker."""
    details = activity.cancellation_details()
    return details is not None and details.cancel_requested


def _cancelled_while_running(
    node: BaseNode, report: StepReport, lines: CapturedLines, cancel: asyncio.CancelledError
) -> ApplicationError:
    """The step was cancelled while its driver ran: the task records since when it ran and how it
    ended (the end of the use is recorded in the ledger already)."""
    why = str(cancel) or "its driver was asked to abort"
    _fill(report, StepResult(status=-1, message=f"cancelled while running: {why}"), lines)
    report.next_execution = _next_execution(node)
    return ApplicationError(report.message or "cancelled", report, type=STEP_CANCELLED, non_retryable=True)


def _is_refusal(exc: WorkflowUpdateFailedError) -> bool:
    return isinstance(exc.cause, ApplicationError) and exc.cause.type == LEDGER_REFUSAL


def _next_execution(node: BaseNode) -> NextExecution:
    """Where an operator's "continue, next" goes after this step; a driver's error must not leak the use."""
    try:
        return node.next_execution()
    except Exception:  # driver code: any error means the seed's default
        node.logger.exception("next_node_execution() failed; NEXT is assumed")
        return NextExecution.NEXT


def _waiting_beat(gate: NodeGate, waiter: Waiter, refusal: str | None) -> StepBeat:
    """The step's place in its node's line, and the ledger's last refusal if it was refused."""
    return StepBeat(phase=WAITING, position=gate.position(waiter), waiting=len(gate.waiting), reason=refusal)


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _fill(report: StepReport, result: StepResult, lines: CapturedLines) -> None:
    report.status, report.message, report.endpoint = result.status, result.message, result.endpoint
    report.output = result.output
    report.logs = list(lines)
    report.finished_at = datetime.now(UTC)


def _failure_text(node: BaseNode, request: StepRequest, result: StepResult) -> str:
    return (
        f"step {request.step.index + 1} on node {node.id} failed with status {result.status}: "
        f"{result.message or 'no message'}"
    )
