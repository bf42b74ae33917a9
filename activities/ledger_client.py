"""The worker's side of the node ledgers: updates that ride out outages, and a ledger that vanished.

A ledger update is retried while Temporal is unreachable (a server restart, a cut link, a ledger's
continue-as-new). A ledger that no longer exists (terminated from the Temporal UI, say) would make
every retry fail for ever and stall every step of its node: it is started again instead, in ERROR,
since what the node did last is unknown, and an operator's restart of the node reopens it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import activity
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from ..engine.contracts import NODE_WORKFLOW_TYPE, NodeInput, node_workflow_id
from ..engine.ledger import LedgerState
from ..engine.states import NodeState
from .metrics import ledger_call

T = TypeVar("T")

LEDGER_RPC_TIMEOUT = timedelta(seconds=20)
LEDGER_RETRY_S = 1.0
RESTARTED_LEDGER_REASON = (
    "its ledger had ended (terminated from the Temporal UI?) and was started again: what the node did "
    "last is unknown. Check the device, then restart the node"
)


class LedgerClient:
    def __init__(self, client: Client, workflow_task_queue: str) -> None:
        self.client = client
        self.workflow_task_queue = workflow_task_queue

    async def update(
        self, node_id: str, update: str, argument: Any, answer: type[T], persist: bool = False
    ) -> T:
        """Send the ledger's update `update` (by name) until it is answered. A cancel of the step stops
        the retries, unless the update must arrive whatever happens (`persist`: the end of a use)."""
        handle = self.client.get_workflow_handle(node_workflow_id(node_id))
        while True:
            try:
                with ledger_call(update):
                    return await handle.execute_update(
                        update, argument, result_type=answer, rpc_timeout=LEDGER_RPC_TIMEOUT
                    )
            except WorkflowUpdateFailedError:
                raise
            except (RPCError, RPCTimeoutOrCancelledError) as exc:
                if not persist and activity.is_cancelled():
                    raise asyncio.CancelledError from exc
                if _ledger_gone(exc):
                    await self.start_again(node_id)
                    continue
                activity.logger.warning("ledger of node %s unreachable (%s); trying again", node_id, exc)
                await asyncio.sleep(LEDGER_RETRY_S)

    async def start_again(self, node_id: str) -> None:
        activity.logger.error("node %s: %s", node_id, RESTARTED_LEDGER_REASON)
        ledger = LedgerState(node_id=node_id, state=NodeState.ERROR, reason=RESTARTED_LEDGER_REASON)
        await self.client.start_workflow(
            NODE_WORKFLOW_TYPE,
            NodeInput(ledger=ledger),
            id=node_workflow_id(node_id),
            task_queue=self.workflow_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )


def _ledger_gone(exc: Exception) -> bool:
    return isinstance(exc, RPCError) and exc.status is RPCStatusCode.NOT_FOUND
