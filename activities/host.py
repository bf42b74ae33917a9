"""The nodes a worker hosts: their drivers, each with its own thread, and their gates."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from temporalio.client import Client

from ..engine.ledger import WorkerInfo
from ..engine.nodes import BaseNode
from .gate import NodeGate

T = TypeVar("T")

# How long a starting worker lets the steps already waiting for its nodes arrive before it admits the
# first: the server hands them over within a few hundred milliseconds, in no particular order.
GATE_SETTLE_S = 1.0


class NodeHost:
    """Shared by the activities of one worker process."""

    def __init__(
        self,
        client: Client,
        nodes: dict[str, BaseNode],
        emulate: bool = False,
        worker: WorkerInfo | None = None,
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.emulate = emulate
        self.worker = worker  # this process, as the ledgers record who runs a use
        self.gates = {node_id: NodeGate(node_id, settle_s=GATE_SETTLE_S) for node_id in nodes}
        # One thread per node: a driver is never called from two threads, and a stuck driver blocks
        # only its own node.
        self._threads = {
            node_id: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"node-{node_id}")
            for node_id in nodes
        }

    def node(self, node_id: str) -> BaseNode:
        return self.nodes[node_id]

    def in_driver_thread(self, node_id: str, call: Callable[..., T], *args: object) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._threads[node_id], functools.partial(call, *args))

    async def shutdown(self) -> None:
        """The worker stops: each driver releases its device (`_shutdown`, the seed's hook) in its own
        thread, after its last step; a driver that fails to is logged, the others still run theirs."""
        for node_id, node in self.nodes.items():
            if self.emulate:
                continue
            try:
                await self.in_driver_thread(node_id, node._shutdown)
            except Exception:  # driver code: report it, shut the others down all the same
                node.logger.exception("_shutdown() failed")

    def close(self) -> None:
        for pool in self._threads.values():
            pool.shutdown(wait=False, cancel_futures=True)
