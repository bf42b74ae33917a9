"""Nodes: state, holder, waiting tasks, statistics, restart."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import Nodes, Operator, Viewer
from ..responses import errors
from ..schemas import NodePublic

router = APIRouter(prefix="/nodes", tags=["nodes"], responses=errors(401, 403, 503))


@router.get("")
async def list_nodes(who: Viewer, nodes: Nodes) -> list[NodePublic]:
    """Every node: its state, holder, waiting tasks, statistics, and whether a live worker hosts it."""
    return await nodes.list_all()


@router.get("/{node_id}", responses=errors(404))
async def show_node(node_id: str, who: Viewer, nodes: Nodes) -> NodePublic:
    """One node: its state, holder, waiting tasks, statistics, and whether a live worker hosts it."""
    return await nodes.show(node_id)


@router.post("/{node_id}/restart", responses=errors(404, 409))
async def restart_node(node_id: str, who: Operator, nodes: Nodes) -> NodePublic:
    """Restart a node (not while a step runs on it): clears its ERROR once its driver restarted."""
    return await nodes.restart(node_id, who.name)
