"""What a driver's run comes to: what it raised, the driver asked to abort and given its grace, the end
of the node's use for each way a run ends (done, given up while the driver ran, cancelled), an output
too large to carry, and where an operator's "next" goes after this node's step."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from ..engine.errors import DriverReturnedAfterCancelError, DriverStuckError, StepTimeoutError
from ..engine.ledger import EndUse, UseKey
from ..engine.models import NextExecution, StepResult
from ..engine.nodes import BaseNode, CallState, DriverCall
from ..engine.tasks import StepRequest
from ..engine.tracebacks import driver_traceback


async def driver_outcome(
    node: BaseNode, request: StepRequest, call: DriverCall, future: asyncio.Future[StepResult]
) -> StepResult:
    """The result of the driver's call for `request`, running in the node's thread: the node's timeout
    enforced, a cancel passed on to the driver. What the driver raised is the step's failure (a
    TimeoutError of its own too: not the node's timeout)."""
    grace_s = request.step.abort_grace_s
    try:
        done, _ = await asyncio.wait({future}, timeout=request.step.timeout_s)
    except asyncio.CancelledError:
        returned = await abort_and_wait(node, call, future, grace_s)
        if returned is not None:  # it finished all the same: what it did is the use's end
            raise DriverReturnedAfterCancelError(returned) from None
        raise
    if not done:
        await abort_and_wait(node, call, future, grace_s)
        raise StepTimeoutError(
            f"node {node.id} did not finish within its timeout of {request.step.timeout_s} s; "
            "it was asked to abort"
        )
    error = None if future.cancelled() else future.exception()
    if error is not None:
        return driver_raised(node, f"step {request.step.index + 1} of task {request.task_id}", error)
    return future.result()  # a call cancelled before it began (the worker stops): CancelledError


def driver_raised(node: BaseNode, step: str, error: BaseException) -> StepResult:
    """The driver of `step` ("step 2 of task T") raised: the step fails saying what and where. The
    driver's own frames are logged in one record (the worker's log, and the step's lines while they
    are captured) and kept with the step's record."""
    said = f"{type(error).__name__}: {error}"
    trace = driver_traceback(error)
    if trace is None:  # the scheduler's own error (an abort, a result it cannot read): its message says
        return StepResult(status=-1, message=said)
    message = f"{said} (at {trace.where})"
    node.logger.error("{}: its driver raised {}\n{}", step, message, trace.text)
    return StepResult(status=-1, message=message, traceback=trace.text)


def within_output_limit(node: BaseNode, request: StepRequest, result: StepResult) -> StepResult:
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


def end_of(key: UseKey, request: StepRequest, result: StepResult, duration_s: float) -> EndUse:
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


def returned_after_cancel(key: UseKey, result: StepResult, duration_s: float) -> EndUse:
    """The end of a use whose step was given up while its driver ran, and whose driver returned all
    the same (it finished, or stopped when asked): what it reports, and why the step was given up."""
    cancelled = cancelled_use(key, duration_s)
    why = cancelled.message
    return EndUse(
        key=key,
        succeeded=result.succeeded,
        final=cancelled.final,  # its task gone: a failure puts the node in ERROR, nobody will decide
        status=result.status,
        message=f"{result.message or 'no message'} (the step had been given up: {why})",
        duration_s=duration_s,
        ended_at=datetime.now(UTC),
        # A driver that stopped when asked (its failure) was cancelled; one that finished did its work.
        cancelled=cancelled.cancelled and not result.succeeded,
    )


def cancelled_use(key: UseKey, duration_s: float) -> EndUse:
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
    # An operator's cancel of the task is counted apart from the node's failures; a worker's stop is not.
    by_operator = details is not None and details.cancel_requested
    return EndUse(
        key=key,
        succeeded=False,
        final=False,
        message="cancelled: its driver was asked to abort" if by_operator else "cancelled",
        duration_s=duration_s,
        cancelled=by_operator,
    )


async def abort_and_wait(
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


def next_execution(node: BaseNode) -> NextExecution:
    """Where an operator's "continue, next" goes after this step; a driver's error must not leak the use."""
    try:
        return node.next_execution()
    except Exception:  # driver code: any error means the seed's default
        node.logger.exception("next_node_execution() failed; NEXT is assumed")
        return NextExecution.NEXT
