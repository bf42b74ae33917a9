"""`GET /timeline` (JSON) and `GET /timeline.svg` (its picture): which task's steps waited for and ran on
which node, and when, read from Temporal (visibility for the tasks, each task's status query for its
step records). No second database: the work is bounded by MAX_TASKS and a small concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from ...engine.errors import UnknownTaskError
from ...engine.tasks import StepRecord
from ...engine.timeline import TaskSteps, Timeline, build_timeline, render_svg, window
from ..deps import Tasks, Viewer
from ..responses import GUARDED, errors
from ..service import TaskService, _filter_value, temporal_errors

router = APIRouter(tags=["lab"])

MAX_TASKS = 500
CONCURRENCY = 8
STEP_PAGE = 200
MAX_STEPS_PER_TASK = 2000

Since = Annotated[
    str | None, Query(description="ISO time or a duration back from now (30m, 2h, 1d); default 2h")
]
Until = Annotated[str | None, Query(description="ISO time or a duration back from now; default now")]
NodeFilter = Annotated[str | None, Query(description="only this node's lane")]
WorkflowFilter = Annotated[str | None, Query(description="only tasks of this lab workflow")]


@router.get("/timeline", responses={**GUARDED, **errors(422, 503)})
async def timeline(
    request: Request,
    who: Viewer,
    tasks: Tasks,
    since: Since = None,
    until: Until = None,
    node: NodeFilter = None,
    workflow: WorkflowFilter = None,
) -> Timeline:
    """The steps that waited for or ran on each node in the window (at most 500 tasks: see `truncated`)."""
    return await read_timeline(tasks, since, until, node, workflow)


@router.get(
    "/timeline.svg",
    responses={**GUARDED, **errors(422, 503), 200: {"content": {"image/svg+xml": {}}}},
    response_class=Response,
)
async def timeline_svg(
    request: Request,
    who: Viewer,
    tasks: Tasks,
    since: Since = None,
    until: Until = None,
    node: NodeFilter = None,
    workflow: WorkflowFilter = None,
) -> Response:
    """The timeline as an SVG Gantt chart: a lane per node, bars coloured by outcome, task ids as tooltips."""
    model = await read_timeline(tasks, since, until, node, workflow)
    return Response(render_svg(model), media_type="image/svg+xml")


async def read_timeline(
    tasks: TaskService, since: str | None, until: str | None, node: str | None, workflow: str | None
) -> Timeline:
    start, end = window(since, until, datetime.now(UTC))
    ids, truncated = await _task_ids(tasks, start, end, workflow)
    gate = asyncio.Semaphore(CONCURRENCY)
    read = await asyncio.gather(*(_task_steps(tasks, task_id, gate) for task_id in ids))
    lanes = [n.id for n in tasks.lab.nodes]
    model = build_timeline(read, start, end, lanes, truncated)
    if node:
        model.bars = [b for b in model.bars if b.node == node]
        model.nodes = [node]
        model.tasks = len({b.task_id for b in model.bars})
    return model


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _task_ids(
    tasks: TaskService, start: datetime, end: datetime, workflow: str | None
) -> tuple[list[str], bool]:
    """The lab's tasks alive at some moment of the window (started before its end, not closed before its
    start): the newest MAX_TASKS, and whether there were more."""
    query = (
        f'{tasks.tasks_query} AND StartTime < "{_stamp(end)}" '
        f'AND (ExecutionStatus = "Running" OR CloseTime >= "{_stamp(start)}")'
    )
    if workflow:
        query += f" AND LabWorkflow={_filter_value('workflow', workflow)}"
    ids: list[str] = []
    async with temporal_errors():
        async for execution in tasks.client.list_workflows(
            query, limit=MAX_TASKS + 1, rpc_timeout=tasks.rpc_timeout
        ):
            ids.append(execution.id)
    return ids[:MAX_TASKS], len(ids) > MAX_TASKS


async def _task_steps(tasks: TaskService, task_id: str, gate: asyncio.Semaphore) -> TaskSteps:
    """A task's step records: from its status, and for a long task the pages its status leaves out."""
    async with gate:
        try:
            shown = await tasks.show(task_id)
        except UnknownTaskError:  # deleted since it was listed
            return TaskSteps(task_id=task_id, steps=[])
        steps: list[StepRecord] = list(shown.steps)
        total = min(shown.steps_total or len(steps), MAX_STEPS_PER_TASK)
        if len(steps) < total:
            steps = []
            for offset in range(0, total, STEP_PAGE):
                page = await tasks.steps(task_id, offset, min(STEP_PAGE, total - offset))
                steps.extend(page.steps)
    return TaskSteps(task_id=task_id, workflow_name=shown.workflow_name, steps=steps)
