"""`GET /timeline` (JSON) and `GET /timeline.svg` (its picture): which task's steps waited for and ran on
which node, and when (api/services/timeline.py reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from ...engine.timeline import Timeline
from ...engine.timeline_svg import MAX_WIDTH, MIN_WIDTH, WIDTH, render_svg
from ..deps import Tasks, Viewer
from ..responses import GUARDED, errors
from ..services.timeline import read_timeline

router = APIRouter(tags=["lab"])

Since = Annotated[
    str | None,
    Query(
        description="ISO time, a duration back from now (30m, 2h, 1d), or `fit` (the default): from a "
        "little before the first step of the last 2 hours, at least a minute"
    ),
]
Until = Annotated[str | None, Query(description="ISO time or a duration back from now; default now")]
NodeFilter = Annotated[str | None, Query(description="only this node's lane")]
WorkflowFilter = Annotated[str | None, Query(description="only tasks of this lab workflow")]
Width = Annotated[
    int,
    Query(
        ge=MIN_WIDTH,
        le=MAX_WIDTH,
        description=f"the picture's width in pixels, {MIN_WIDTH} to {MAX_WIDTH} (the lab page asks for "
        "its own, so that the text keeps its size)",
    ),
]


@dataclass(frozen=True)
class TimelineQuery:
    """The window and filters both timeline routes take."""

    since: Since = None
    until: Until = None
    node: NodeFilter = None
    workflow: WorkflowFilter = None


Window = Annotated[TimelineQuery, Depends()]


@router.get("/timeline", responses={**GUARDED, **errors(422, 503)})
async def timeline(request: Request, who: Viewer, tasks: Tasks, query: Window) -> Timeline:
    """The steps that waited for or ran on each node in the window (at most 500 tasks: see `truncated`)."""
    return await read_timeline(tasks, query.since, query.until, query.node, query.workflow)


@router.get(
    "/timeline.svg",
    responses={**GUARDED, **errors(422, 503), 200: {"content": {"image/svg+xml": {}}}},
    response_class=Response,
)
async def timeline_svg(
    request: Request, who: Viewer, tasks: Tasks, query: Window, width: Width = WIDTH
) -> Response:
    """The timeline as an SVG Gantt chart: a lane per node, bars coloured by outcome, task ids as tooltips."""
    model = await read_timeline(tasks, query.since, query.until, query.node, query.workflow)
    return Response(render_svg(model, width), media_type="image/svg+xml")
