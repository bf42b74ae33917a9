"""A task's step records, in pages, wherever they are: the current run holds the recent ones, and the
runs before a continue-as-new still answer theirs (queried by run id, they replay on a worker)."""

from __future__ import annotations

from temporalio.client import Client

from ..engine.tasks import StepPage, StepRecord, StepRecords
from ..workflows.task import TaskWorkflow


async def step_records(client: Client, task_id: str, offset: int, limit: int) -> StepRecords:
    """Records `offset`..`offset + limit - 1` of the task (fewer past its last step)."""
    page = StepPage(offset=offset, limit=limit)
    current = await client.get_workflow_handle_for(TaskWorkflow.run, task_id).query(
        TaskWorkflow.get_steps, page
    )
    found: dict[int, StepRecord] = {s.index: s for s in current.steps}
    for archive in current.archives:
        earlier = client.get_workflow_handle_for(TaskWorkflow.run, task_id, run_id=archive.run_id)
        wanted = StepPage(offset=max(offset, archive.first), limit=limit)
        answer = await earlier.query(TaskWorkflow.get_steps, wanted)
        found.update({s.index: s for s in answer.steps if archive.first <= s.index <= archive.last})
    steps = [found[i] for i in range(offset, min(offset + limit, current.total)) if i in found]
    return StepRecords(total=current.total, offset=offset, steps=steps)
