"""A reload of the lab's configuration: all or nothing, and refused while a running worker's drivers
were built from other settings than the new file's."""

from __future__ import annotations

import asyncio

from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from ...client.handles import ledger_handle
from ...engine.config import LabConfig, NodeConfig, driver_digest
from ...engine.errors import DriverSettingsChangedError, SchedulerUnavailableError
from ...engine.loader import load_config
from ...workflows.node import NodeWorkflow
from .nodes import NodeService


async def reload_lab(nodes: NodeService, lab: LabConfig, node_modules: list[str]) -> LabConfig:
    """Reread and validate the lab's files. What the API uses (workflows; a node's name, retry,
    timeouts) applies to new tasks at once; running tasks keep their snapshot. What a worker built its
    drivers from (a node's type, module, properties, emulate, worker) is fixed while it runs: a reload
    that changes it for a node whose worker is online is refused, naming the PCs whose workers must get
    the new file and restart first."""
    fresh = load_config(lab.nodes_file, lab.workflows_file, node_modules, hosted=None)
    await refuse_changed_drivers(nodes, fresh)
    return fresh


async def refuse_changed_drivers(nodes: NodeService, fresh: LabConfig) -> None:
    """Compare each node's driver settings in the new file with those its online worker reported."""
    changed = await asyncio.gather(*(_driver_change(nodes, node) for node in fresh.nodes))
    if any(changed):
        raise DriverSettingsChangedError("\n".join(c for c in changed if c))


async def _driver_change(nodes: NodeService, node: NodeConfig) -> str | None:
    """Why `node`'s new driver settings cannot apply now, or None (no worker online, or the same)."""
    if not await nodes.hosted(node.id):
        return None  # the worker that starts next builds the driver from the file it has
    try:
        ledger = await ledger_handle(nodes.client, node.id).query(
            NodeWorkflow.status, rpc_timeout=nodes.rpc_timeout
        )
    except (WorkflowQueryFailedError, RPCError) as exc:
        raise SchedulerUnavailableError(
            f"node {node.id}: its ledger does not answer ({exc}), so the reload cannot tell which driver "
            "settings its worker runs; check that a worker runs the workflows, then reload"
        ) from exc
    running = ledger.worker
    if running is None or running.config_digest in (None, driver_digest(node)):
        return None
    who = running.label
    command = f"task-scheduler worker --name {running.name}" if running.name else "task-scheduler worker"
    return (
        f"node {node.id}: the driver settings in the new nodes.json differ from those {who}'s worker "
        f"runs; copy the file to {who} and restart its worker ({command}), then reload"
    )
