"""`GET /stats`: the lab's statistics over a window (api/services/stats.py reads them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from ...engine.stats import Stats
from ..deps import Tasks, Viewer
from ..responses import GUARDED, errors
from ..services.stats import read_stats

router = APIRouter(tags=["lab"])

Since = Annotated[
    str | None, Query(description="ISO time or a duration back from now (30m, 2h, 7d); default 7d")
]
Until = Annotated[str | None, Query(description="ISO time or a duration back from now; default now")]


@router.get("/stats", responses={**GUARDED, **errors(422, 503)})
async def stats(
    request: Request, who: Viewer, tasks: Tasks, since: Since = None, until: Until = None
) -> Stats:
    """Per node its calls, outcomes, run and wait times; per lab workflow its tasks; tasks per week."""
    return await read_stats(tasks, since, until)
