"""Activities on a node itself: restart, probe, shutdown, whether its holder task still runs, and the
withdrawal of a cancelled task's step from the node's line."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from ..engine.contracts import (
    CHECK_HOLDER,
    PROBE_NODE,
    RESTART_NODE,
    SHUTDOWN_NODE,
    WITHDRAW_WAITER,
    WaiterWithdrawal,
)
from ..engine.ledger import HolderAnswer, HolderCheck, NodeCommand, NodeCommandResult, step_of
from .host import NodeHost
from .recovery import ended_use


class NodeActivities:
    def __init__(self, host: NodeHost) -> None:
        self.host = host

    @activity.defn(name=RESTART_NODE)
    async def restart_node(self, command: NodeCommand) -> NodeCommandResult:
        node = self.host.node(command.node_id)
        if self.host.emulate:
            node.logger.info("[emulated] restart of {}", node.name)
            return NodeCommandResult(ok=True, message="emulated restart")
        try:
            ok, message = await self.host.in_driver_thread(node.id, node.restart_device)
        except Exception as exc:  # a driver may raise anything; the operator must see it
            return NodeCommandResult(ok=False, message=f"{type(exc).__name__}: {exc}")
        return NodeCommandResult(ok=ok, message=message)

    @activity.defn(name=PROBE_NODE)
    async def probe_node(self, command: NodeCommand) -> NodeCommandResult:
        node = self.host.node(command.node_id)
        if self.host.emulate:
            return NodeCommandResult(ok=True, message="emulated")
        try:
            reachable = await self.host.in_driver_thread(node.id, node.is_reachable)
        except Exception as exc:
            return NodeCommandResult(ok=False, message=f"{type(exc).__name__}: {exc}")
        return NodeCommandResult(ok=bool(reachable), message=None if reachable else "not reachable")

    @activity.defn(name=SHUTDOWN_NODE)
    async def shutdown_node(self, command: NodeCommand) -> NodeCommandResult:
        node = self.host.node(command.node_id)
        if not self.host.emulate:
            await self.host.in_driver_thread(node.id, node._shutdown)
        return NodeCommandResult(ok=True)

    @activity.defn(name=WITHDRAW_WAITER)
    async def withdraw_waiter(self, withdrawal: WaiterWithdrawal) -> bool:
        """The task of this run was cancelled: if the run waits in the node's line, it heartbeats now and
        hears of the cancel at once (else when it joins the line). Whether it was in the line."""
        key = withdrawal.key
        return self.host.gates[withdrawal.node_id].withdraw(step_of(key), key.run)

    @activity.defn(name=CHECK_HOLDER)
    async def check_holder(self, check: HolderCheck) -> HolderAnswer:
        """Whether the task holding a node still runs (a terminated task never releases it), and whether
        it recorded the held use as ended (its end was lost with its worker)."""
        ended = await ended_use(self.host.client, check.holder) if check.holder else None
        if ended is not None:
            return HolderAnswer(running=False, status="ENDED", ended=ended)
        try:
            description = await self.host.client.get_workflow_handle(check.task_id).describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return HolderAnswer(running=False, status="NOT_FOUND")
            raise
        status = description.status or WorkflowExecutionStatus.RUNNING
        return HolderAnswer(running=status is WorkflowExecutionStatus.RUNNING, status=status.name)
