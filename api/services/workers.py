"""The lab's workers as /workers and /health show them, from what readers/liveness.py read of the
server (its poller lists and the nodes' ledgers) for this request."""

from __future__ import annotations

from datetime import UTC, datetime

from ...engine.config import LabConfig
from ...readers.liveness import LabLiveness, NodeLiveness
from ...readers.pollers import Poller
from ..schemas import WorkerPublic

# The /health key of the unnamed worker of a one-PC lab (a JSON key cannot be null).
UNNAMED_WORKER = "(unnamed)"
EPOCH = datetime.min.replace(tzinfo=UTC)


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def worker_groups(lab: LabConfig) -> list[tuple[str | None, list[str]]]:
    """The workers of nodes.json and the nodes each hosts: the named ones by name, then the unnamed one
    (a one-PC lab's worker, which hosts every node naming none)."""
    groups: dict[str | None, list[str]] = {}
    for node in lab.nodes:
        groups.setdefault(node.worker, []).append(node.id)
    return sorted(groups.items(), key=lambda group: (group[0] is None, group[0] or ""))


def workers(lab: LabConfig, live: LabLiveness) -> list[WorkerPublic]:
    """One entry per worker of the configuration, then one per other host running the workflows."""
    listed = [_node_worker(name, [live.nodes[i] for i in ids], live) for name, ids in worker_groups(lab)]
    claimed = {identity for node in live.nodes.values() for identity in node.identities}
    others = [p for p in live.workflow_pollers if p.identity not in claimed]
    by_host: dict[str, list[Poller]] = {}
    for poller in others:
        by_host.setdefault(poller.host, []).append(poller)
    return listed + [_workflow_worker(host, pollers) for host, pollers in sorted(by_host.items())]


def health_workers(lab: LabConfig, live: LabLiveness) -> dict[str, bool]:
    return {
        name or UNNAMED_WORKER: any(live.nodes[i].online for i in ids) for name, ids in worker_groups(lab)
    }


def _node_worker(name: str | None, nodes: list[NodeLiveness], live: LabLiveness) -> WorkerPublic:
    online = any(n.online for n in nodes)
    newest = max(
        (p for n in nodes if (p := n.newest_poller)), key=lambda p: (p.live, p.last_access), default=None
    )
    latest = max(
        (n.ledger for n in nodes if n.ledger is not None and n.ledger.worker is not None),
        key=lambda ledger: ledger.online_since or EPOCH,
        default=None,
    )
    info = latest.worker if latest is not None else None
    identity = newest.identity if newest else (info.identity if info else None)
    return WorkerPublic(
        name=name,
        host=info.host if info and info.host else (newest.host if newest else None),
        identity=identity,
        nodes=[n.node_id for n in nodes],
        online=online,
        last_seen=max((t for n in nodes if (t := n.last_seen)), default=None),
        offline_since=None if online else max((t for n in nodes if (t := n.offline_since)), default=None),
        runs_workflows=identity is not None and any(p.identity == identity for p in live.workflow_pollers),
    )


def _workflow_worker(host: str, pollers: list[Poller]) -> WorkerPublic:
    """A worker that runs the workflows and hosts no node of the configuration (the server host's)."""
    online = any(p.live for p in pollers)
    newest = max(pollers, key=lambda p: (p.live, p.last_access))
    last_seen = max(p.last_access for p in pollers)
    return WorkerPublic(
        name=None,
        host=host,
        identity=newest.identity,
        nodes=[],
        online=online,
        last_seen=last_seen,
        offline_since=None if online else last_seen,
        runs_workflows=True,
    )
