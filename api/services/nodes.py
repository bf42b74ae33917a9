"""Nodes and the lab as a whole: ledgers, hosting workers, restarts, health, lab-wide pause."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError

from ...client.handles import ledger_handle
from ...engine.config import LabConfig, NodeConfig
from ...engine.errors import SchedulerUnavailableError, TaskSchedulerError, UnknownNodeError
from ...engine.ledger import NodeCommand
from ...engine.states import NodeState, TaskState
from ...readers.liveness import LabLiveness, NodeLiveness
from ...settings import Settings
from ...workflows.node import NodeWorkflow
from ..schemas import HealthPublic, LabCommandPublic, NodePublic, WorkerPublic
from .errors import temporal_errors
from .tasks import TaskService
from .workers import health_workers, utc_text, workers


class NodeService:
    def __init__(self, client: Client, settings: Settings, lab: LabConfig, tasks: TaskService) -> None:
        self.client = client
        self.settings = settings
        self.lab = lab
        self.tasks = tasks
        self.rpc_timeout = timedelta(seconds=settings.rpc_timeout_s)
        self.liveness = tasks.liveness

    def config(self, node_id: str) -> NodeConfig:
        if not self.lab.has_node(node_id):
            known = ", ".join(n.id for n in self.lab.nodes)
            raise UnknownNodeError(f"unknown node {node_id!r}; known nodes: {known}")
        return self.lab.node(node_id)

    async def list_all(self) -> list[NodePublic]:
        ids = [n.id for n in self.lab.nodes]
        live, waiting = await asyncio.gather(self._lab_liveness(ids), self._waiting_all(ids))
        return [self._public(node_id, live.nodes[node_id], waiting[node_id]) for node_id in ids]

    async def show(self, node_id: str) -> NodePublic:
        self.config(node_id)
        live, waiting = await asyncio.gather(self._lab_liveness([node_id]), self._waiting(node_id))
        return self._public(node_id, live.nodes[node_id], waiting)

    def _public(self, node_id: str, live: NodeLiveness, waiting: list[str]) -> NodePublic:
        config = self.config(node_id)
        ledger = live.ledger
        holding = {h.key.task_id for h in ledger.holders} if ledger else set()
        public = NodePublic(
            id=config.id,
            name=config.name,
            type=config.type,
            worker=config.worker,
            online=live.online,
            worker_host=live.host,
            offline_since=live.offline_since,
            hosted=live.online,
            waiting_tasks=[t for t in waiting if t not in holding],
            capacity=config.capacity,
        )
        if ledger is not None:
            public.state, public.holder, public.reason = ledger.state, ledger.holder, ledger.reason
            public.holders = ledger.holders
            public.stats, public.restarts = ledger.stats, ledger.restarts
            public.reachable, public.unreachable_since = ledger.reachable, ledger.unreachable_since
            if not ledger.reachable and public.reason is None:
                since = utc_text(ledger.unreachable_since) if ledger.unreachable_since else "its last probe"
                public.reason = f"{ledger.unreachable_reason or 'its device does not answer'} (since {since})"
            if not live.online and ledger.state in (NodeState.AVAILABLE, NodeState.OFFLINE):
                # Idle, and nobody to run a step: a worker killed while idle left the ledger AVAILABLE.
                public.state = NodeState.OFFLINE
                public.reason = public.reason or _offline_text(live.worker_label(config.worker), live)
        return public

    async def _lab_liveness(self, node_ids: list[str]) -> LabLiveness:
        async with temporal_errors():
            return await self.liveness.lab(node_ids)

    async def _waiting_all(self, node_ids: list[str]) -> dict[str, list[str]]:
        waiting = await asyncio.gather(*(self._waiting(node_id) for node_id in node_ids))
        return dict(zip(node_ids, waiting, strict=True))

    async def _waiting(self, node_id: str) -> list[str]:
        page = await self.tasks.list_all(TaskState.ACTIVE.value, None, node_id, 100, None)
        return [t.task_id for t in page.tasks]

    async def hosted(self, node_id: str) -> bool:
        """A live worker hosts the node (and has not stopped cleanly since)."""
        async with temporal_errors():
            return (await self.liveness.node(node_id)).online

    async def workers(self) -> list[WorkerPublic]:
        """Every worker of nodes.json (one per PC), then the other hosts running the workflows."""
        live = await self._lab_liveness([n.id for n in self.lab.nodes])
        return workers(self.lab, live)

    async def restart(self, node_id: str, by: str | None) -> NodePublic:
        self.config(node_id)
        handle = ledger_handle(self.client, node_id)
        async with temporal_errors():
            await handle.execute_update(
                NodeWorkflow.restart, NodeCommand(node_id=node_id, by=by), rpc_timeout=self.rpc_timeout
            )
        return await self.show(node_id)

    async def health(self) -> HealthPublic:
        address = self.settings.temporal_address
        try:
            live = await self._lab_liveness([n.id for n in self.lab.nodes])
        except (RPCError, SchedulerUnavailableError) as exc:
            return unreachable(address, f"Temporal at {address} does not answer: {exc}")
        return HealthPublic(
            temporal=True,
            temporal_address=address,
            workflow_worker=live.workflow_worker,
            nodes={node_id: node.online for node_id, node in live.nodes.items()},
            workers=health_workers(self.lab, live),
        )

    async def pause_lab(self, by: str | None) -> LabCommandPublic:
        """Every running task pauses after its current step (an operator must enter the lab)."""
        ids = await self.tasks.ids_in_state(TaskState.PENDING, TaskState.ACTIVE)
        return await self._for_each(ids, lambda task_id: self.tasks.pause(task_id, by))

    async def resume_lab(self, by: str | None) -> LabCommandPublic:
        """Continue every paused task, and cancel the pauses still pending."""
        paused = await self.tasks.ids_in_state(TaskState.PAUSED)
        active = await asyncio.gather(
            *(self.tasks.show(i) for i in await self.tasks.ids_in_state(TaskState.ACTIVE))
        )
        ids = paused + [task.task_id for task in active if task.pause_requested]
        return await self._for_each(ids, lambda task_id: self.tasks.proceed(task_id, "retry", by))

    async def _for_each(self, ids: list[str], command: object) -> LabCommandPublic:
        result = LabCommandPublic()

        async def one(task_id: str) -> None:
            try:
                await command(task_id)  # type: ignore[operator]
                result.done.append(task_id)
            except TaskSchedulerError as exc:
                result.refused[task_id] = exc.message

        await asyncio.gather(*(one(task_id) for task_id in ids))
        result.done.sort()
        return result


def _offline_text(who: str | None, live: NodeLiveness) -> str:
    worker = f"its worker {who}" if who else "its worker"
    since = live.offline_since
    return f"{worker} is offline" + (f" since {utc_text(since)}" if since else "")


def unreachable(address: str, detail: str) -> HealthPublic:
    return HealthPublic(
        temporal=False, temporal_address=address, workflow_worker=False, nodes={}, detail=detail
    )
