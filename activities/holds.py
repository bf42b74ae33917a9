"""The hold activity: a step that needs several nodes (`holds`) takes each of them, in the order of node
ids, through this activity on the node's own queue. It waits in the node's line like a step, takes the
node in its ledger as a hold, tells its task, and keeps the node until its task cancels it (the step is
over). Its task takes the next node only once told: all tasks take their nodes in one order, so no two
can each hold what the other waits for.

A hold lives in the node's ledger, not in this process: should its worker die, the ledger still names
the hold (no other step begins), the activity's retry takes it over in the worker that comes back, and
the task's release reaches the ledger whether or not a worker runs. A hold nobody releases (its task
ended without a word) is found by the ledger's holder check and let go.
"""

from __future__ import annotations

import asyncio
import contextlib

from temporalio import activity

from ..engine.contracts import HOLD_GRANTED_SIGNAL, HOLD_NODE, HOLDING, HoldGrant, HoldRequest, StepBeat
from ..engine.ledger import EndUse, UseKey
from .heartbeat import Heartbeat
from .host import NodeHost
from .uses import NodeUses

HOLDING_BEAT_S = 1.0


class HoldActivities:
    def __init__(self, host: NodeHost, uses: NodeUses) -> None:
        self.host = host
        self.uses = uses

    @activity.defn(name=HOLD_NODE)
    async def hold_node(self, request: HoldRequest) -> None:
        key = UseKey(
            task_id=request.task_id,
            step_index=request.step_index,
            run=request.run,
            attempt=activity.info().attempt,
        )
        async with Heartbeat(request.heartbeat_timeout_s) as beat:
            await self.uses.acquire(
                request.node_id,
                key,
                beat,
                priority=request.priority,
                requested_at=request.requested_at,
                hold=True,
            )
            try:
                beat.set(StepBeat(phase=HOLDING, worker=self.host.worker.label if self.host.worker else None))
                await self._tell(request)
                while True:  # until the task cancels it: its step is over
                    await asyncio.sleep(HOLDING_BEAT_S)
            finally:
                released = EndUse(key=key, succeeded=True, final=False, message="hold released", hold=True)
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.uses.finish(request.node_id, released))

    async def _tell(self, request: HoldRequest) -> None:
        """The task takes its next node once it knows it has this one (sent again by a retry: the task
        keeps each grant once)."""
        grant = HoldGrant(step_index=request.step_index, run=request.run, node_id=request.node_id)
        await self.host.client.get_workflow_handle(request.task_id).signal(HOLD_GRANTED_SIGNAL, grant)
