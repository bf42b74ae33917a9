"""The node's local gate, in the worker that hosts the node: orders the steps waiting for it.

Order: higher priority first, then the time the task requested the step, then arrival. The gate is
local to one process; the node's ledger (NodeWorkflow) guards against a holder in another process.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ..engine.ledger import EndUse

# A withdrawal that found no waiter is remembered this long, for a run still on its way to the line.
WITHDRAWAL_KEPT_S = 60.0
WITHDRAWALS_KEPT = 100


@dataclass(order=True)
class Waiter:
    sort_key: tuple[int, datetime, int]
    name: str = field(compare=False)
    turn: asyncio.Future[EndUse | None] = field(compare=False, repr=False)
    # Resolved once the use handed to this waiter has been recorded as ended in the ledger.
    handed_close: asyncio.Future[None] | None = field(default=None, compare=False, repr=False)
    step: str = field(default="", compare=False)  # the step it runs (ledger.step_of)
    run: int = field(default=0, compare=False)  # the step's run (ledger.UseKey.run)
    # Makes the step heartbeat now: its task was cancelled, and the cancel comes in the answer.
    hurry: Callable[[], None] | None = field(default=None, compare=False, repr=False)


class NodeGate:
    """Admits up to `capacity` steps at a time (one for most nodes); with one, a finishing step hands
    the node straight to the next waiter. With more, each end is recorded before its place is given
    again (NodeUses), so there is no end to carry."""

    def __init__(self, node_id: str, settle_s: float = 0.0, capacity: int = 1) -> None:
        self.node_id = node_id
        self.capacity = capacity
        self._waiters: list[Waiter] = []
        self._taken = 0  # places given to steps and not released yet
        self._arrivals = itertools.count()
        self._preferred: str | None = None
        # The end of the last use, not recorded yet: the next step admitted carries it in its begin.
        self._pending: EndUse | None = None
        # A worker that starts (after an outage, say) receives the steps waiting for its node one by
        # one, in the server's order, not the order they asked in: admitting the first at once let a
        # task that asked 1.3 s later go first. The gate admits nobody until the deliveries settled.
        self._opens_at = time.monotonic() + settle_s
        self._settling: asyncio.TimerHandle | None = None
        # Withdrawals of runs that were not in the line when they came (see `withdraw`): run by step,
        # with when they came (monotonic), the oldest dropped first.
        self._withdrawn: dict[str, tuple[int, float]] = {}

    def enter(
        self,
        name: str,
        priority: int,
        requested_at: datetime,
        step: str = "",
        run: int = 0,
        hurry: Callable[[], None] | None = None,
    ) -> Waiter:
        loop = asyncio.get_running_loop()
        order = (-priority, requested_at, next(self._arrivals))
        waiter = Waiter(order, name, loop.create_future(), step=step, run=run, hurry=hurry)
        self._waiters.append(waiter)
        self._waiters.sort()
        self._hurry_if_withdrawn(waiter)
        self._admit()
        return waiter

    def withdraw(self, step: str, run: int) -> bool:
        """The task of this step's run was cancelled while the run waited for the node: the waiter
        heartbeats at once, so the cancel (which Temporal hands an activity only in the answer to a
        heartbeat) reaches it now, not at its next beat (up to 10 s). A run not in the line yet (still
        on its way, or asking the ledger) is hurried when it joins or rejoins it. Whether it was there."""
        self._withdrawn.pop(step, None)  # re-inserted: the newest last
        self._withdrawn[step] = (run, time.monotonic())
        for oldest in list(self._withdrawn)[: max(0, len(self._withdrawn) - WITHDRAWALS_KEPT)]:
            del self._withdrawn[oldest]
        waiters = [w for w in self._waiters if (w.step, w.run) == (step, run)]
        for waiter in waiters:
            self._hurry_if_withdrawn(waiter)
        return bool(waiters)

    def _hurry_if_withdrawn(self, waiter: Waiter) -> None:
        withdrawn = self._withdrawn.get(waiter.step)
        if withdrawn is None or withdrawn[0] != waiter.run:
            return
        if time.monotonic() - withdrawn[1] <= WITHDRAWAL_KEPT_S and waiter.hurry is not None:
            waiter.hurry()

    def position(self, waiter: Waiter) -> int:
        """1 = next in line (0 once admitted)."""
        return self._waiters.index(waiter) + 1 if waiter in self._waiters else 0

    @property
    def waiting(self) -> list[str]:
        return [w.name for w in self._waiters]

    def leave(self, waiter: Waiter) -> None:
        """A waiter gives up (cancelled) before its turn. The gate may be free (it gave up while it sat
        out a refusal, see `step_back`): the next waiter must not wait for an event that never comes."""
        if waiter in self._waiters:
            self._waiters.remove(waiter)
            self._admit()

    @property
    def _busy(self) -> bool:
        return self._taken >= self.capacity

    def _free_one(self) -> None:
        self._taken = max(0, self._taken - 1)

    def step_back(self, waiter: Waiter) -> None:
        """An admitted waiter could not start (the ledger refused): free its place, queue again."""
        self._free_one()
        waiter.turn = asyncio.get_running_loop().create_future()
        waiter.handed_close = None
        self._waiters.append(waiter)
        self._waiters.sort()
        self._hurry_if_withdrawn(waiter)

    def readmit(self) -> None:
        self._admit()

    def prefer(self, step: str) -> None:
        """The ledger names a use of `step` that never ended (its worker was lost): it admits only that
        step's retry, so the retry goes first when it comes; the others, refused meanwhile, would hold
        the head of the line for ever."""
        self._preferred = step
        self._admit()

    def hand_over(self, close: EndUse) -> asyncio.Future[None] | None:
        """The holder is done and a step waits: the node goes straight to it, and its begin records
        `close`; the returned future resolves once it has. Nobody waits: None, and the gate stays
        closed until `release`, so that no step begins before the end of use is recorded."""
        if not self._waiters or self.capacity > 1:
            return None  # with several places, each end is recorded before its place is given again
        waiter = self._waiters.pop(0)
        waiter.handed_close = asyncio.get_running_loop().create_future()
        waiter.turn.set_result(close)
        return waiter.handed_close

    def defer(self, close: EndUse) -> None:
        """The holder is done and nobody waits: the gate opens, and the next step admitted records
        `close` with its begin (see `take_pending` for the end nobody takes)."""
        self._pending = close
        self._free_one()
        self._admit()

    def take_pending(self) -> EndUse | None:
        """The deferred end if no step took it, to be sent alone; the gate then stays closed until
        `release`, so that no step begins before it is recorded."""
        close, self._pending = self._pending, None
        if close is not None:
            self._taken += 1
        return close

    def release(self, close: EndUse | None) -> asyncio.Future[None] | None:
        """The holder is done. With `close` and a waiter, a hand-over (see `hand_over`); otherwise the
        gate opens."""
        handed = self.hand_over(close) if close is not None else None
        if handed is not None:
            return handed
        self._free_one()
        self._admit()
        return None

    def _admit(self) -> None:
        if self._still_settling():
            return
        while not self._busy and self._waiters:
            waiter = self._next()
            self._waiters.remove(waiter)
            if waiter.turn.done():
                continue
            self._taken += 1
            close, self._pending = self._pending, None
            if close is not None:
                waiter.handed_close = asyncio.get_running_loop().create_future()
            waiter.turn.set_result(close)

    def _still_settling(self) -> bool:
        remaining = self._opens_at - time.monotonic()
        if remaining <= 0:
            return False
        if self._settling is None:
            self._settling = asyncio.get_running_loop().call_later(remaining, self._admit)
        return True

    def _next(self) -> Waiter:
        preferred = [w for w in self._waiters if self._preferred and w.step == self._preferred]
        if preferred:
            self._preferred = None
            return preferred[0]
        return self._waiters[0]
