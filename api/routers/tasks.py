"""Tasks: start, list, show, pause, continue, cancel, wait, logs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from ...engine.states import TaskState
from ..deps import Operator, Tasks, Viewer
from ..responses import errors
from ..schemas import (
    TASK_ID_PATTERN,
    CancelBody,
    ContinueBody,
    StepPagePublic,
    StepPublic,
    TaskCreate,
    TaskPage,
    TaskPublic,
)

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=errors(401, 403, 503))
TaskId = Annotated[str, Path(pattern=TASK_ID_PATTERN, description="the task id (= its Temporal workflow id)")]
StepId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        description="the step's id in its workflow, or its number from 1 (as `continue --step` takes it)",
    ),
]


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(400, 404, 409, 422))
async def start_task(body: TaskCreate, who: Operator, tasks: Tasks) -> TaskPublic:
    """Start a task: one run of a lab workflow with its arguments."""
    return await tasks.start(body)


@router.get("", responses=errors(422))
async def list_tasks(
    who: Viewer,
    tasks: Tasks,
    state: TaskState | None = None,
    workflow_name: str | None = None,
    node: str | None = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: Annotated[str | None, Query(pattern=r"^[0-9a-f]*$")] = None,
) -> TaskPage:
    """List tasks, newest first, filtered by state, lab workflow or current node."""
    return await tasks.list_all(state.value if state else None, workflow_name, node, page_size, page_token)


@router.get("/{task_id}", responses=errors(404, 422))
async def show_task(task_id: TaskId, who: Viewer, tasks: Tasks) -> TaskPublic:
    """A task's state, its steps and their records, and its result."""
    return await tasks.show(task_id)


@router.get("/{task_id}/steps", responses=errors(404, 422))
async def task_steps(
    task_id: TaskId,
    who: Viewer,
    tasks: Tasks,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> StepPagePublic:
    """A task's step records, a page at a time (a task may have thousands of steps)."""
    return await tasks.steps(task_id, offset, limit)


@router.get("/{task_id}/steps/{step_id}", responses=errors(404, 422))
async def task_step(task_id: TaskId, step_id: StepId, who: Viewer, tasks: Tasks) -> StepPublic:
    """One step's record, by its id or its number from 1 (an element of `GET /tasks/{id}/steps`)."""
    return await tasks.step(task_id, step_id)


@router.get("/{task_id}/logs", responses=errors(404, 422))
async def task_logs(task_id: TaskId, who: Viewer, tasks: Tasks) -> list[StepPublic]:
    """The timeline of a task: every step's times, outcome, message and driver log lines."""
    return (await tasks.show(task_id)).steps


@router.post("/{task_id}/pause", responses=errors(404, 409, 422))
async def pause_task(task_id: TaskId, who: Operator, tasks: Tasks) -> TaskPublic:
    """Pause the task after its current step."""
    return await tasks.pause(task_id, who.name)


@router.post("/{task_id}/continue", responses=errors(400, 404, 409, 422))
async def continue_task(
    task_id: TaskId, who: Operator, tasks: Tasks, body: ContinueBody | None = None
) -> TaskPublic:
    """Continue a paused or failed task (`retry` the step, or go `next`), or end a running wait (`next`)."""
    body = body or ContinueBody()
    return await tasks.proceed(task_id, body.mode, who.name, body.reason, body.step)


@router.post("/{task_id}/cancel", responses=errors(400, 404, 409, 422))
async def cancel_task(
    task_id: TaskId, who: Operator, tasks: Tasks, body: CancelBody | None = None
) -> TaskPublic:
    """Cancel the task: its running step is aborted, and it ends as cancelled."""
    return await tasks.cancel(task_id, (body or CancelBody()).reason, who.name)


@router.get("/{task_id}/wait", responses=errors(404, 422))
async def wait_task(
    task_id: TaskId, who: Viewer, tasks: Tasks, timeout_s: Annotated[float, Query(gt=0, le=300)] = 30
) -> TaskPublic:
    """Wait until the task is over, or `timeout_s` has passed; then show it."""
    return await tasks.wait(task_id, timeout_s)
