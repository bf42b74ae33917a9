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

from ..engine.tasks import StepArchive, StepPage, StepRecord, StepRecords
from ..workflows.task import TaskWorkflow


async def step_records(
    client: Client, task_id: str, offset: int, limit: int, rpc_timeout: timedelta | None = None
) -> StepRecords:
    """Records `offset`..`offset + limit - 1` of the task (fewer past its last step)."""
    page = StepPage(offset=offset, limit=limit)
    current = await client.get_workflow_handle_for(TaskWorkflow.run, task_id).query(
        TaskWorkflow.get_steps, page, rpc_timeout=rpc_timeout
    )
    found: dict[int, StepRecord] = {s.index: s for s in current.steps}
    gone: list[StepArchive] = []
    for archive in current.archives:
        earlier = client.get_workflow_handle_for(TaskWorkflow.run, task_id, run_id=archive.run_id)
        wanted = StepPage(offset=max(offset, archive.first), limit=limit)
        try:
            answer = await earlier.query(TaskWorkflow.get_steps, wanted, rpc_timeout=rpc_timeout)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            gone.append(archive)
            continue
        found.update({s.index: s for s in answer.steps if archive.first <= s.index <= archive.last})
    steps = [found[i] for i in range(offset, min(offset + limit, current.total)) if i in found]
    return StepRecords(total=current.total, offset=offset, steps=steps, unavailable=gone)
