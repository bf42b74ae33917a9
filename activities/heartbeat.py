"""Heartbeats of a step: sent from the event loop, never from the driver's thread, so a busy driver
cannot starve them and a cancellation still reaches the activity.

Every heartbeat is a write on the Temporal server (the activity's state). A phase's first heartbeat
waits FIRST_BEAT_S: a step admitted at once whose driver returns within it sends none, and costs the
server no more writes than a plain activity. Nothing safety-related rides on the heartbeats: the node's
ledger says whether a lost run began (see `Ledger.begin`); they show the phase, the place in line and
who runs the step (the Temporal UI, the API), and carry a cancel back to the activity.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

from temporalio import activity

# A waiting step beats only to show its place in line and to hear of a cancel: 50 steps queued for hours
# would otherwise keep the server writing (W3 of bench/: -9 % server CPU per step from 5 s to 10 s).
WAITING_INTERVAL_S = 10.0
# A cancellation reaches the activity only in the answer to a heartbeat: while the driver runs, beat
# often, so an operator's cancel reaches `_abort()` within about a second (the worker's throttle too).
RUNNING_INTERVAL_S = 1.0
FIRST_BEAT_S = 0.25


class Heartbeat:
    """Sends the current details now and then; `set` changes them (waiting, position n / running).
    A new phase goes out FIRST_BEAT_S after it began (if it still holds), then every interval; other
    changes (the position) go with the next beat."""

    def __init__(self, heartbeat_timeout_s: float) -> None:
        self.timeout_s = heartbeat_timeout_s
        self.details: dict[str, Any] = {"phase": "waiting"}
        self._phase_changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def interval_s(self) -> float:
        cap = RUNNING_INTERVAL_S if self.details.get("phase") == "running" else WAITING_INTERVAL_S
        return min(cap, self.timeout_s / 3)

    def set(self, **details: Any) -> None:
        new_phase = details.get("phase") != self.details.get("phase")
        self.details = details
        if new_phase:
            self._phase_changed.set()

    async def _loop(self) -> None:
        wait_s = min(FIRST_BEAT_S, self.interval_s)
        while True:
            self._phase_changed.clear()
            try:
                await asyncio.wait_for(self._phase_changed.wait(), wait_s)
            except TimeoutError:
                activity.heartbeat(self.details)
                wait_s = self.interval_s
            else:  # a new phase: its first beat after FIRST_BEAT_S
                wait_s = min(FIRST_BEAT_S, self.interval_s)

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
