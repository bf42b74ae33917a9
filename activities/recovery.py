"""Uses whose end never reached the ledger although they ended: a step that succeeded returns before the
end of its use is recorded (activities/steps.py), so a worker killed in between leaves the use open.

The task's own record proves the end: a step's run is recorded SUCCEEDED only once its driver returned
and the step activity reported it. Such a use is closed as it ended (counted, the node free again); any
other open use stays open, for its retry or an operator's restart, as before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

from ..engine.contracts import END_USE
from ..engine.ledger import EndUse, Holder
from ..engine.task_state import StepOutcome
from ..readers.records import step_records

log = logging.getLogger("task_scheduler.recovery")

RECORD_TIMEOUT_S = 10.0
ENDED_MESSAGE = "its end was recorded from its task's record (its worker stopped before sending it)"


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
