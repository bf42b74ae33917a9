"""Uses whose end never reached the ledger, as the worker that hosts their node finds them when it starts.

A use that ended: a step that succeeded returns before the end of its use is recorded
(activities/steps.py), so a worker killed in between leaves the use open. The task's own record proves
the end: a step's run is recorded SUCCEEDED only once its driver returned and the step activity reported
it. Such a use is closed as it ended (counted, the node free again).

A use that did not: the worker process that ran it is gone (this one hosts the node now). Its step's
activity would be given up by the server only after its heartbeat timeout, and the task would show it
RUNNING until then: it is failed at once (WorkerReplaced), so that Temporal retries it as the node
allows, or the task stops at once for an operator, the run cut off. The use stays open, for that retry
or an operator's restart, as before.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowHandle, WorkflowQueryFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from ..engine.contracts import END_USE, RUNNING, WORKER_REPLACED, StepBeat, step_activity_id
from ..engine.ledger import EndUse, Holder, WorkerInfo
from ..engine.task_state import StepOutcome
from ..readers.records import step_records

log = logging.getLogger("task_scheduler.recovery")

RECORD_TIMEOUT_S = 10.0
RPC_TIMEOUT = timedelta(seconds=10)
ENDED_MESSAGE = "its end was recorded from its task's record (its worker stopped before sending it)"
# A run whose heartbeat timeout is this close is left to the server: failing it by its id then could fail
# the next attempt, which the server may start in between.
TIMEOUT_MARGIN_S = 3.0


async def ended_use(client: Client, holder: Holder) -> EndUse | None:
    """The end of the holder's use if its task recorded that run (that attempt) as SUCCEEDED; else None
    (the task is unknown, does not answer, or the use may still be running)."""
    key = holder.key
    try:
        page = await asyncio.wait_for(step_records(client, key.task_id, key.step_index, 1), RECORD_TIMEOUT_S)
    except (TimeoutError, RPCError, RPCTimeoutOrCancelledError, WorkflowQueryFailedError) as exc:
        log.info("could not read the record of %s: %s", key, exc)
        return None
    record = next((s for s in page.steps if s.index == key.step_index), None)
    if record is None or record.outcome is not StepOutcome.SUCCEEDED:
        return None
    if (record.runs, record.attempts) != (key.run, key.attempt):
        return None
    duration_s = 0.0
    if record.started_at and record.finished_at:
        duration_s = max(0.0, (record.finished_at - record.started_at).total_seconds())
    return EndUse(
        key=key,
        succeeded=True,
        duration_s=duration_s,
        status=record.status,
        message=record.message or ENDED_MESSAGE,
        ended_at=record.finished_at,
    )


async def close_if_ended(client: Client, ledger: WorkflowHandle[Any, Any], holder: Holder) -> bool:
    """Record the end of the holder's use in `ledger` (a node's) if its task proves it ended."""
    end = await ended_use(client, holder)
    if end is None:
        return False
    await ledger.execute_update(END_USE, end, result_type=bool)
    log.warning("the use by %s had ended (its task recorded it); its end is now recorded", holder.key)
    return True


async def fail_lost_run(client: Client, node_id: str, holder: Holder, hosting: WorkerInfo) -> bool:
    """The holder's use never ended and the worker process that ran it is gone (`hosting`, this one,
    hosts the node now): fail its step's activity at once, as the server would at its heartbeat timeout.
    Whether it did (not if the activity is no longer that run's attempt, or its timeout is near)."""
    ran_it, key = holder.worker, holder.key
    if ran_it is None or not ran_it.identity or ran_it.identity == hosting.identity:
        return False
    activity_id = step_activity_id(key.step_index, node_id, key.run)
    try:
        pending = await _pending_attempt(client, holder, activity_id)
        if pending is None:
            return False
        lost = ApplicationError(
            f"worker lost during step {key.step_index + 1} on node {node_id}: its worker process on "
            f"{ran_it.label} ended while the step ran ({hosting.label} started again)",
            (await _last_beat(client, pending, holder)).sent(),
            type=WORKER_REPLACED,
        )
        run = client.get_async_activity_handle(workflow_id=key.task_id, run_id=None, activity_id=activity_id)
        await run.fail(lost, rpc_timeout=RPC_TIMEOUT)
    except (RPCError, RPCTimeoutOrCancelledError) as exc:
        log.info("could not fail the lost run %s: %s", key, exc)  # its heartbeat timeout will
        return False
    except Exception:  # best effort while the worker comes online: never a reason not to come online
        log.exception("could not fail the lost run %s; its heartbeat timeout will report it", key)
        return False
    log.warning("the use by %s never ended and its worker process is gone: the run is reported lost", key)
    return True


async def _pending_attempt(client: Client, holder: Holder, activity_id: str) -> PendingActivityInfo | None:
    """The step's activity, if it is still the attempt that holds the node, run by the process that is
    gone, and far enough from its heartbeat timeout that the server will not start the next attempt
    while this one is failed (failed by its id, the next attempt would be)."""
    description = await client.get_workflow_handle(holder.key.task_id).describe(rpc_timeout=RPC_TIMEOUT)
    found = [a for a in description.raw_description.pending_activities if a.activity_id == activity_id]
    if not found or found[0].state != PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
        return None
    pending, ran_it = found[0], holder.worker or WorkerInfo()
    if (pending.attempt, pending.last_worker_identity) != (holder.key.attempt, ran_it.identity):
        return None
    heard = (
        pending.last_heartbeat_time if pending.HasField("last_heartbeat_time") else pending.last_started_time
    )
    silent_s = (datetime.now(UTC) - heard.ToDatetime(tzinfo=UTC)).total_seconds()
    timeout_s = pending.activity_options.heartbeat_timeout.ToTimedelta().total_seconds()
    return pending if silent_s < timeout_s - TIMEOUT_MARGIN_S else None


async def _last_beat(client: Client, pending: PendingActivityInfo, holder: Holder) -> StepBeat:
    """What the task reads of the lost run, as it would in a heartbeat timeout: running since when, on
    which worker, which attempt, where an operator's "next" goes, and when the server heard it last."""
    said = StepBeat()
    if pending.heartbeat_details.payloads:
        (details,) = await client.data_converter.decode(pending.heartbeat_details.payloads)
        said = StepBeat.of(details)
    heard = (
        pending.last_heartbeat_time.ToDatetime(tzinfo=UTC)
        if pending.HasField("last_heartbeat_time")
        else None
    )
    return StepBeat(
        phase=RUNNING,
        started_at=said.started_at or holder.since,
        worker=holder.worker.label if holder.worker else said.worker,
        attempt=holder.key.attempt,
        next=said.next,
        sent_at=said.sent_at or heard,  # the PC's clock, as a heartbeat timeout reads it; else the server's
    )
