"""Is each node's worker, each lab PC, online? Read from the server's poller lists and the nodes'
ledgers, when asked: the API reads it for each request (stateless), the LabWorkflow's `check_workers`
activity every few seconds.

A poller alone says too much: the server lists a worker's pollers for minutes after it is gone, so a
poller counts only while it is recent (pollers.py, a 20 s window), and not at all once the node's
ledger says its worker stopped cleanly (the stop is recorded before the pollers end).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from ..engine.contracts import LEDGER_STATUS, node_task_queue, node_workflow_id
from ..engine.errors import SchedulerUnavailableError
from ..engine.ledger import LedgerState
from ..engine.states import NodeState
from ..settings import Settings
from .pollers import Poller, queue_pollers


@dataclass(frozen=True)
class NodeLiveness:
    """A node's pollers and its ledger (None: no ledger yet, or no workflow worker to answer)."""

    node_id: str
    pollers: list[Poller]
    ledger: LedgerState | None = None

    def stopped(self, poller: Poller) -> bool:
        """The poller lingers after its worker stopped cleanly: the ledger says OFFLINE, or offline since
        after this poll, or the stop was announced by this very process."""
        ledger = self.ledger
        if ledger is None:
            return False
        if ledger.state is NodeState.OFFLINE:
            return True
        if ledger.offline_since is None:
            return False
        announced = ledger.worker is not None and ledger.worker.identity == poller.identity
        return announced or poller.last_access <= ledger.offline_since

    @property
    def online(self) -> bool:
        return any(p.live and not self.stopped(p) for p in self.pollers)

    @property
    def last_seen(self) -> datetime | None:
        """The newest poll of the node's queue, else when its worker stopped cleanly."""
        polled = max((p.last_access for p in self.pollers), default=None)
        return polled or (self.ledger.offline_since if self.ledger else None)

    @property
    def offline_since(self) -> datetime | None:
        """When its worker stopped (cleanly: the ledger's word; killed: its last poll), if known."""
        if self.online:
            return None
        stopped = self.ledger.offline_since if self.ledger else None
        return max((t for t in (stopped, self.last_seen) if t is not None), default=None)

    @property
    def newest_poller(self) -> Poller | None:
        return max(self.pollers, key=lambda p: (p.live, p.last_access), default=None)

    @property
    def identities(self) -> set[str]:
        """Every worker process known to have hosted the node (lingering pollers included)."""
        known = {p.identity for p in self.pollers}
        if self.ledger is not None and self.ledger.worker is not None:
            known.add(self.ledger.worker.identity)
        return known

    def worker_label(self, configured: str | None) -> str | None:
        """Who hosts the node: its configured worker's name, else what the ledger knows of it."""
        if configured:
            return configured
        worker = self.ledger.worker if self.ledger else None
        return worker.label if worker else None

    @property
    def host(self) -> str | None:
        worker = self.ledger.worker if self.ledger else None
        if worker is not None and worker.host:
            return worker.host
        newest = self.newest_poller
        return newest.host if newest else None


@dataclass(frozen=True)
class LabLiveness:
    """Everything /workers and /health need, read once: the workflow queue's pollers and every node's."""

    workflow_pollers: list[Poller]
    nodes: dict[str, NodeLiveness]

    @property
    def workflow_worker(self) -> bool:
        return any(p.live for p in self.workflow_pollers)


class LivenessReader:
    """Reads pollers and ledgers, each with the API's RPC timeout (a health check must answer soon)."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.task_queue = settings.task_queue
        self.temporal_address = settings.temporal_address
        self.timeout_s = settings.rpc_timeout_s

    async def pollers(self, task_queue: str, activities: bool = True) -> list[Poller]:
        # The client retries an unavailable server for many seconds: answer sooner.
        try:
            return await asyncio.wait_for(queue_pollers(self.client, task_queue, activities), self.timeout_s)
        except TimeoutError as exc:
            raise SchedulerUnavailableError(
                f"Temporal at {self.temporal_address} did not answer within {self.timeout_s:g} s"
            ) from exc

    async def ledger(self, node_id: str) -> LedgerState | None:
        handle = self.client.get_workflow_handle(node_workflow_id(node_id))
        timeout = timedelta(seconds=self.timeout_s)
        try:
            return await handle.query(LEDGER_STATUS, result_type=LedgerState, rpc_timeout=timeout)
        except (WorkflowQueryFailedError, RPCError):
            return None  # no ledger yet (no worker ever hosted it), or no worker to answer

    async def node(self, node_id: str, with_ledger: bool = True) -> NodeLiveness:
        if not with_ledger:
            return NodeLiveness(node_id, await self.pollers(node_task_queue(node_id)))
        pollers, ledger = await asyncio.gather(self.pollers(node_task_queue(node_id)), self.ledger(node_id))
        return NodeLiveness(node_id, pollers, ledger)

    async def lab(self, node_ids: list[str]) -> LabLiveness:
        """The workflow queue first: without a live workflow worker no ledger can answer, so none is
        asked (each query would wait its timeout)."""
        workflow = await self.pollers(self.task_queue, activities=False)
        live = any(p.live for p in workflow)
        nodes = await asyncio.gather(*(self.node(node_id, with_ledger=live) for node_id in node_ids))
        return LabLiveness(workflow, {n.node_id: n for n in nodes})
