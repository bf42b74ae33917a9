"""Workers: one per lab PC, and whether each is online."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import Nodes, Viewer
from ..responses import errors
from ..schemas import WorkerPublic

router = APIRouter(prefix="/workers", tags=["workers"], responses=errors(401, 403, 503))


@router.get("")
async def list_workers(who: Viewer, nodes: Nodes) -> list[WorkerPublic]:
    """Every worker (one per PC, and any other running the workflows): host, nodes, online, last seen."""
    return await nodes.workers()
