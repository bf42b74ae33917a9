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
from temporalio.exceptions import ApplicationError

from ..engine.contracts import (
    HOLD_GRANTED_SIGNAL,
    HOLD_INTERRUPTED,
    HOLD_NODE,
    HOLDING,
    RELEASE_HOLD,
    HoldGrant,
    HoldRequest,
    StepBeat,
)
from ..engine.ledger import EndUse, HoldRelease, UseKey, step_of
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
            beat.set(StepBeat(phase=HOLDING, worker=self.host.worker.label if self.host.worker else None))
            let_go = self.host.holds.setdefault(hold_of(key), asyncio.Event())
            try:
                await self._tell(request)
                while not let_go.is_set() and not activity.is_worker_shutdown():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(let_go.wait(), HOLDING_BEAT_S)
            except asyncio.CancelledError:
                if _let_go():
                    await self._release(request.node_id, key)
                raise
            except Exception:  # its task could not be told (it ended): nobody will want this hold
                await self._release(request.node_id, key)
                raise
            finally:
                self.host.holds.pop(hold_of(key), None)
            if let_go.is_set():
                await self._release(request.node_id, key)
                return
        # The worker stops: the hold stays in the node's ledger (the step may still run elsewhere), and
        # this activity's retry, in the worker that hosts the node next, takes it over.
        raise ApplicationError(
            f"the worker hosting node {request.node_id} stops; the hold stays in the node's ledger until "
            "the retry of this activity takes it over",
            type=HOLD_INTERRUPTED,
        )

    @activity.defn(name=RELEASE_HOLD)
    async def release_hold(self, release: HoldRelease) -> bool:
        """The hold's task lets go of it (its ledger was told too): the hold activity gives the node's
        place in its line to the next step at once. A hold still waiting in the line was cancelled: it
        beats now, to hear it. Whether this worker had the hold."""
        let_go = self.host.holds.get(hold_of(release.key))
        if let_go is not None:
            let_go.set()
        else:
            self.host.gates[release.node_id].withdraw(step_of(release.key), release.key.run)
        return let_go is not None

    async def _release(self, node_id: str, key: UseKey) -> None:
        """The task let go of the hold (its ledger was told by the task too): give the node's place in
        its line to the next step, its begin carrying this end."""
        released = EndUse(key=key, succeeded=True, final=False, message="hold released", hold=True)
        with contextlib.suppress(Exception):
            await asyncio.shield(self.uses.finish(node_id, released))

    async def _tell(self, request: HoldRequest) -> None:
        """The task takes its next node once it knows it has this one (sent again by a retry: the task
        keeps each grant once)."""
        grant = HoldGrant(step_index=request.step_index, run=request.run, node_id=request.node_id)
        await self.host.client.get_workflow_handle(request.task_id).signal(HOLD_GRANTED_SIGNAL, grant)


def _let_go() -> bool:
    """Cancelled because its task let go (it asked; or, TRY_CANCEL, it moved on at once and the server
    no longer knows the activity), not because its worker stops or the server gave it up as timed out:
    then the hold stays, for this activity's retry."""
    details = activity.cancellation_details()
    return details is not None and (details.cancel_requested or details.not_found)


def hold_of(key: UseKey) -> str:
    """A hold, whatever its attempt: "task/step/run"."""
    return f"{step_of(key)}/{key.run}"
