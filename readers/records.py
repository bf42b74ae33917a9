"""A task's step records, in pages, wherever they are: the current run holds the recent ones, and the
runs before a continue-as-new still answer theirs (queried by run id, they replay on a worker).

An earlier run is kept by Temporal only for its namespace's retention after it closed (30 days on the
dev server): a page that needs a run that is gone has its other records, and names the run in
`unavailable`, rather than failing as a whole.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from ..engine.contracts import GET_STEPS
from ..engine.task_state import StepArchive, StepPage, StepRecord, StepRecords


async def step_records(
    client: Client, task_id: str, offset: int, limit: int, rpc_timeout: timedelta | None = None
) -> StepRecords:
    """Records `offset`..`offset + limit - 1` of the task (fewer past its last step)."""
    page = StepPage(offset=offset, limit=limit)
    current = await _page(client, task_id, None, page, rpc_timeout)
    found: dict[int, StepRecord] = {s.index: s for s in current.steps}
    gone: list[StepArchive] = []
    for archive in current.archives:
        wanted = StepPage(offset=max(offset, archive.first), limit=limit)
        try:
            answer = await _page(client, task_id, archive.run_id, wanted, rpc_timeout)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            gone.append(archive)
            continue
        found.update({s.index: s for s in answer.steps if archive.first <= s.index <= archive.last})
    steps = [found[i] for i in range(offset, min(offset + limit, current.total)) if i in found]
    return StepRecords(total=current.total, offset=offset, steps=steps, unavailable=gone)


async def _page(
    client: Client, task_id: str, run_id: str | None, page: StepPage, rpc_timeout: timedelta | None
) -> StepRecords:
    handle = client.get_workflow_handle(task_id, run_id=run_id)
    return await handle.query(GET_STEPS, page, result_type=StepRecords, rpc_timeout=rpc_timeout)
