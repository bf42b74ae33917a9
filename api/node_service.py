"""Nodes and the lab as a whole: ledgers, hosting workers, restarts, health, lab-wide pause."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from ..client.handles import ledger_handle
from ..client.pollers import live_pollers
from ..engine.config import LabConfig, NodeConfig
from ..engine.errors import SchedulerUnavailableError, TaskSchedulerError, UnknownNodeError
from ..engine.ledger import LedgerState, NodeCommand
from ..engine.states import TaskState
from ..settings import Settings
from ..workflows.ids import node_task_queue
from ..workflows.node import NodeWorkflow
from .schemas import HealthPublic, LabCommandPublic, NodePublic
from .service import TaskService, temporal_errors


class NodeService:
    def __init__(self, client: Client, settings: Settings, lab: LabConfig, tasks: TaskService) -> None:
        self.client = client
        self.settings = settings
        self.lab = lab
        self.tasks = tasks
        self.rpc_timeout = timedelta(seconds=settings.rpc_timeout_s)

    def config(self, node_id: str) -> NodeConfig:
        if not self.lab.has_node(node_id):
            known = ", ".join(n.id for n in self.lab.nodes)
            raise UnknownNodeError(f"unknown node {node_id!r}; known nodes: {known}")
        return self.lab.node(node_id)

    async def list_all(self) -> list[NodePublic]:
        return list(await asyncio.gather(*(self.show(n.id) for n in self.lab.nodes)))

    async def show(self, node_id: str) -> NodePublic:
        config = self.config(node_id)
        ledger, hosted, waiting = await asyncio.gather(
            self._ledger(node_id), self.hosted(node_id), self._waiting(node_id)
        )
        holder_task = ledger.holder.key.task_id if ledger and ledger.holder else None
        public = NodePublic(
            id=config.id,
            name=config.name,
            type=config.type,
            worker=config.worker,
            hosted=hosted,
            waiting_tasks=[t for t in waiting if t != holder_task],
        )
        if ledger is not None:
            public.state, public.holder, public.reason = ledger.state, ledger.holder, ledger.reason
            public.stats, public.restarts = ledger.stats, ledger.restarts
        return public

    async def _ledger(self, node_id: str) -> LedgerState | None:
        handle = ledger_handle(self.client, node_id)
        try:
            return await handle.query(NodeWorkflow.status, rpc_timeout=self.rpc_timeout)
        except (WorkflowQueryFailedError, RPCError):
            return None  # no ledger yet (no worker ever hosted it), or no worker to answer

    async def _waiting(self, node_id: str) -> list[str]:
        page = await self.tasks.list_all(TaskState.ACTIVE.value, None, node_id, 100, None)
        return [t.task_id for t in page.tasks]

    async def hosted(self, node_id: str) -> bool:
        return await self._polled(node_task_queue(node_id))

    async def _polled(self, task_queue: str, activities: bool = True) -> bool:
        """A live worker polls `task_queue` (its activity side, or its workflow side)."""
        # The client retries an unavailable server for many seconds: a health check must answer sooner.
        timeout_s = self.settings.rpc_timeout_s
        async with temporal_errors():
            try:
                return bool(
                    await asyncio.wait_for(live_pollers(self.client, task_queue, activities), timeout_s)
                )
            except TimeoutError as exc:
                raise SchedulerUnavailableError(
                    f"Temporal at {self.settings.temporal_address} did not answer within {timeout_s:g} s"
                ) from exc

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
            workflow_worker = await self._polled(self.settings.task_queue, activities=False)
            hosted = await asyncio.gather(*(self.hosted(n.id) for n in self.lab.nodes))
        except (RPCError, SchedulerUnavailableError) as exc:
            return unreachable(address, f"Temporal at {address} does not answer: {exc}")
        nodes = {n.id: h for n, h in zip(self.lab.nodes, hosted, strict=True)}
        return HealthPublic(
            temporal=True, temporal_address=address, workflow_worker=workflow_worker, nodes=nodes
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


def unreachable(address: str, detail: str) -> HealthPublic:
    return HealthPublic(
        temporal=False, temporal_address=address, workflow_worker=False, nodes={}, detail=detail
    )
