"""Heartbeats of a step: sent from the event loop, never from the driver's thread, so a busy driver
cannot starve them and a cancellation still reaches the activity.

Every heartbeat is a write on the Temporal server (the activity's state). "running" goes out the moment
the driver is about to start: when the beats stop (a PC cut off, a worker killed), it is what tells the
task that a driver may be acting, so that the run is held as cut off for an operator rather than asked
for again (the ledger would refuse a second run all the same, but the task would first show it as
waiting). "waiting" carries no such weight (the place in line, and a cancel in its answer): its first
beat waits FIRST_BEAT_S, so a step admitted at once sends one heartbeat, not two.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from types import TracebackType

from temporalio import activity

from ..engine.contracts import HOLDING, StepBeat

# A waiting step beats only to show its place in line and to hear of a cancel (its cancelled task asks
# for a beat at once: `hurry`): 50 steps queued for hours would otherwise keep the server writing (W3 of
# bench/: -9 % server CPU per step from 5 s to 10 s).
WAITING_INTERVAL_S = 10.0
# A cancellation reaches the activity only in the answer to a heartbeat: while the driver runs, beat
# often, so an operator's cancel reaches `_abort()` within about a second (the worker's throttle too).
RUNNING_INTERVAL_S = 1.0
FIRST_BEAT_S = 0.25  # before a step's first "waiting" beat


class Heartbeat:
    """Sends the current beat now and then; `set` changes it (waiting, position n / running). "running"
    goes out at once, "waiting" first after FIRST_BEAT_S; then each every interval. Other changes (the
    position) go with the next beat."""

    def __init__(self, heartbeat_timeout_s: float) -> None:
        self.timeout_s = heartbeat_timeout_s
        self.beat = StepBeat()
        self._phase_changed = asyncio.Event()  # or a beat asked for now (`hurry`)
        self._hurried = False
        self._task: asyncio.Task[None] | None = None

    @property
    def interval_s(self) -> float:
        # A hold beats as often as a running step: its release (a cancel) comes in a beat's answer, and
        # the node's next step waits for it.
        often = self.running or self.beat.phase == HOLDING
        return min(RUNNING_INTERVAL_S if often else WAITING_INTERVAL_S, self.timeout_s / 3)

    @property
    def running(self) -> bool:
        return self.beat.running

    def set(self, beat: StepBeat) -> None:
        new_phase = beat.phase != self.beat.phase
        self.beat = beat
        if new_phase:
            if self.running:
                activity.heartbeat(beat.sent(datetime.now(UTC)))
            self._phase_changed.set()

    def hurry(self) -> None:
        """Beat now, from the step's own task (a heartbeat is its activity's): its task was cancelled
        while it waited, and Temporal hands an activity its cancel only in the answer to a heartbeat."""
        self._hurried = True
        self._phase_changed.set()

    async def _loop(self) -> None:
        fresh = True  # no beat sent yet in this phase
        while True:
            self._phase_changed.clear()
            if self._beat_if_hurried():  # asked for while this loop was not waiting
                fresh = False
            first_wait = fresh and not self.running  # "running" went out in `set`
            wait_s = min(FIRST_BEAT_S, self.interval_s) if first_wait else self.interval_s
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that lands as the
            # event is set (a phase set just before the step ends), and the step's exit waited for ever.
            try:
                async with asyncio.timeout(wait_s):
                    await self._phase_changed.wait()
                fresh = not self._beat_if_hurried()
            except TimeoutError:
                if self._phase_changed.is_set():  # a new phase (or a hurry) in the same tick
                    fresh = not self._beat_if_hurried()
                    continue
                activity.heartbeat(self.beat.sent(datetime.now(UTC)))
                fresh = False

    def _beat_if_hurried(self) -> bool:
        if not self._hurried:
            return False
        self._hurried = False
        activity.heartbeat(self.beat.sent(datetime.now(UTC)))
        return True

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
