"""The records of a node's uses in its ledger, as the step activity makes them through the node's gate:
the begin of a use (with the end of the use handed over, in the same round trip), and the end, sent at
once, with the next waiter's begin, or alone a moment later; sent until it arrives, even after a
cancel, since the end is what lets the node be used again."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from ..engine.contracts import (
    BEGIN_USE,
    END_USE,
    LEDGER_REFUSAL,
    WAITING,
    WAITING_INTERRUPTED,
    WORKER_LOST,
    StepBeat,
)
from ..engine.ledger import BeginUse, BeginVerdict, EndUse, UseKey, step_of
from .driving import next_execution
from .gate import NodeGate, Waiter
from .heartbeat import Heartbeat
from .host import NodeHost
from .ledger_client import LedgerClient

REFUSED_RETRY_S = 1.0


class NodeUses:
    """Begins and ends of the uses of the nodes a worker hosts, in their ledgers."""

    def __init__(self, host: NodeHost) -> None:
        self.host = host
        self.ledgers = LedgerClient(host.client, host.workflow_task_queue)
        # Uses begun outside the gate: their step's hold (activities/holds.py) has its place there, and
        # gives it back when its task releases it; their end is recorded alone.
        self._ungated: set[str] = set()  # by str(UseKey)

    # --- waiting for the node ----------------------------------------------------------------------

    async def acquire(
        self,
        node_id: str,
        key: UseKey,
        beat: Heartbeat,
        *,
        priority: int,
        requested_at: datetime,
        max_attempts: int = 1,
        lost_run: int | None = None,
        hold: bool = False,
    ) -> float:
        """Wait for the node in its gate, then begin the use (or the hold) in its ledger, again after
        each refusal; the seconds waited."""
        gate = self.host.gates[node_id]
        entered = time.monotonic()
        waiter = gate.enter(
            str(key), priority, requested_at, step=step_of(key), run=key.run, hurry=beat.hurry
        )
        refusal: str | None = None  # the ledger's last word, said in every heartbeat until it is granted
        try:
            while True:
                close = await self._wait_turn(gate, waiter, beat, refusal)
                begin = BeginUse(
                    key=key,
                    waited_s=time.monotonic() - entered,
                    max_attempts=max_attempts,
                    close=close,
                    lost_run=lost_run,
                    worker=self.host.worker,
                    capacity=gate.capacity,
                    hold=hold,
                )
                refusal = await self.begin(node_id, gate, waiter, begin)
                if refusal is None:
                    return begin.waited_s
                beat.set(_waiting_beat(gate, waiter, refusal))
                await asyncio.sleep(REFUSED_RETRY_S)
                _stop_if_worker_stops()
                gate.readmit()
        except BaseException:
            await self.abandon_turn(node_id, gate, waiter, key)
            raise

    async def begin_held(
        self, node_id: str, key: UseKey, beat: Heartbeat, max_attempts: int, lost_run: int | None
    ) -> None:
        """Begin the use of a step that took its node with its holds: its hold has the node's place in
        the gate, so the step goes to the ledger at once (which takes the hold over), again after each
        refusal (the node in ERROR, say). Its end is recorded alone (`finish`)."""
        self._ungated.add(str(key))
        capacity = self.host.gates[node_id].capacity
        begin = BeginUse(
            key=key, max_attempts=max_attempts, lost_run=lost_run, worker=self.host.worker, capacity=capacity
        )
        try:
            while (refusal := await self._begin_ungated(begin, node_id)) is not None:
                beat.set(StepBeat(phase=WAITING, reason=refusal))
                await asyncio.sleep(REFUSED_RETRY_S)
                _stop_if_worker_stops()
        except BaseException:
            self._ungated.discard(str(key))
            raise

    async def _wait_turn(
        self, gate: NodeGate, waiter: Waiter, beat: Heartbeat, refusal: str | None
    ) -> EndUse | None:
        while not waiter.turn.done():
            beat.set(_waiting_beat(gate, waiter, refusal))
            _stop_if_worker_stops()
            await asyncio.wait({waiter.turn}, timeout=1.0)
        return waiter.turn.result()

    async def _ask(self, node_id: str, begin: BeginUse) -> BeginVerdict | ApplicationError:
        """The ledger's verdict on a begin, or its refusal (any other failure raises)."""
        try:
            return await self.ledgers.update(node_id, BEGIN_USE, begin, BeginVerdict)
        except WorkflowUpdateFailedError as exc:
            if not _is_refusal(exc):
                raise
            assert isinstance(exc.cause, ApplicationError)
            return exc.cause

    async def _begin_ungated(self, begin: BeginUse, node_id: str) -> str | None:
        """The begin of a use whose step holds the node already; the ledger's refusal or None."""
        verdict = await self._ask(node_id, begin)
        if isinstance(verdict, ApplicationError):
            return verdict.message
        self._raise_if_lost(node_id, begin, verdict)
        return None

    async def begin(self, node_id: str, gate: NodeGate, waiter: Waiter, begin: BeginUse) -> str | None:
        """Record the start of use (and the end of the use handed over); the ledger's refusal or None."""
        verdict = await self._ask(node_id, begin)
        if isinstance(verdict, ApplicationError):
            await self.flush_close(node_id, waiter)
            gate.step_back(waiter)
            if verdict.details and isinstance(verdict.details[0], str):
                gate.prefer(verdict.details[0])  # the node is kept for that step: it goes first when it comes
            return verdict.message
        resolve(waiter.handed_close)
        waiter.handed_close = None
        self._raise_if_lost(node_id, begin, verdict)
        return None

    def _raise_if_lost(self, node_id: str, begin: BeginUse, verdict: BeginVerdict) -> None:
        """An earlier run of this step began here and never ended, or ended unreported: the operator."""
        # A lost run has no report: where the operator's "next" goes is said here (the node's answer).
        lost = {"next": next_execution(self.host.node(node_id)).value}
        if verdict is BeginVerdict.LOST_PREVIOUS:
            raise ApplicationError(
                f"worker lost during step {begin.key.step_index + 1}: its earlier run began on node "
                f"{node_id} and never ended; an operator must check the node and continue the task",
                lost,
                type=WORKER_LOST,
                non_retryable=True,
            )
        if verdict is BeginVerdict.RAN_BEFORE:
            raise ApplicationError(
                f"worker lost during step {begin.key.step_index + 1}: its earlier run used node {node_id} "
                "to the end, but its outcome never reached the task; an operator must check the step's "
                "result and continue the task (next if it was done, retry if not)",
                lost,
                type=WORKER_LOST,
                non_retryable=True,
            )

    async def flush_close(self, node_id: str, waiter: Waiter) -> None:
        """The use handed to this waiter must be recorded as ended even if this waiter cannot begin."""
        turn = waiter.turn
        close = turn.result() if turn.done() and not turn.cancelled() else None
        if close is not None and waiter.handed_close is not None and not waiter.handed_close.done():
            try:
                await self.end(node_id, close)
            finally:
                resolve(waiter.handed_close)

    async def abandon_turn(self, node_id: str, gate: NodeGate, waiter: Waiter, key: UseKey) -> None:
        """Leave the gate. If this step had its turn, its begin may have reached the ledger (a cancel can
        land while the update is in flight): record that the use ended before the driver started; the
        ledger ignores the end of a use it never granted."""
        gate.leave(waiter)
        if waiter.turn.done() and not waiter.turn.cancelled():
            never_ran = EndUse(
                key=key, succeeded=False, final=False, message="left before the driver started"
            )
            try:
                await asyncio.shield(self.flush_close(node_id, waiter))
                await asyncio.shield(self.end(node_id, never_ran))
            finally:
                gate.release(None)

    def end_in_background(self, node_id: str, end: EndUse) -> None:
        """A step that succeeded returns at once: the end of its use goes with the next step's begin on
        the node (a waiter's now, or one that comes within FLUSH_S), or alone after FLUSH_S, without
        holding the step's completion back. A worker killed before it arrives leaves the use open in
        the ledger; the task's record of the step (SUCCEEDED) proves it ended (`recovery.ended_use`)."""
        gate = self.host.gates[node_id]
        if gate.capacity > 1:  # several hold it: each end is recorded before its place is given again
            self.host.keep_ending(node_id, asyncio.create_task(self._end_then_release(node_id, gate, end)))
            return
        if gate.hand_over(end) is not None:
            return  # the waiter's begin records it, or its own flush if it cannot begin (flush_close)
        gate.defer(end)
        self.host.keep_ending(node_id, asyncio.create_task(self._flush_later(node_id, gate)))

    async def _end_then_release(self, node_id: str, gate: NodeGate, end: EndUse) -> None:
        try:
            await self.end(node_id, end)
        finally:
            gate.release(None)

    async def _flush_later(self, node_id: str, gate: NodeGate) -> None:
        await self.host.flush_due()
        end = gate.take_pending()
        if end is None:
            return  # a step's begin carried it
        try:
            await self.end(node_id, end)
        finally:
            gate.release(None)

    async def finish(self, node_id: str, end: EndUse) -> None:
        """Make sure the end of use is recorded: by the next waiter's begin (a hand-over), or here."""
        if str(end.key) in self._ungated:  # its step's hold gives the gate's place back, once released
            await asyncio.shield(self.end(node_id, end))
            self._ungated.discard(str(end.key))
            return
        gate = self.host.gates[node_id]
        handed = gate.hand_over(end) if end.succeeded or not end.final else None
        if handed is not None:
            await asyncio.shield(handed)
            return
        try:
            await asyncio.shield(self.end(node_id, end))
        finally:
            # Opened only now: a step admitted while the end is on its way would begin while the ledger
            # still names this holder, be refused, and wait a second (a pipeline hits this often).
            gate.release(None)

    async def end(self, node_id: str, end: EndUse) -> None:
        """The end of a use is the record that lets the node be used again (or, for a run given up as
        cut off, what the operator decides on): it is sent until it arrives, even after a cancel."""
        await self.ledgers.update(node_id, END_USE, end, bool, persist=True)


def _is_refusal(exc: WorkflowUpdateFailedError) -> bool:
    return isinstance(exc.cause, ApplicationError) and exc.cause.type == LEDGER_REFUSAL


def resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _waiting_beat(gate: NodeGate, waiter: Waiter, refusal: str | None) -> StepBeat:
    """The step's place in its node's line, and the ledger's last refusal if it was refused."""
    return StepBeat(phase=WAITING, position=gate.position(waiter), waiting=len(gate.waiting), reason=refusal)


def _stop_if_worker_stops() -> None:
    """A step (or hold) waiting for the node ends when its worker stops: its task asks for it again."""
    if activity.is_worker_shutdown():
        raise ApplicationError(
            "the worker hosting the node is shutting down", type=WAITING_INTERRUPTED, non_retryable=True
        )
