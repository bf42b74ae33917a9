"""Heartbeats of a step: sent from the event loop, never from the driver's thread, so a busy driver
cannot starve them and a cancellation still reaches the activity."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

from temporalio import activity

MAX_INTERVAL_S = 5.0


class Heartbeat:
    """Sends the current details now and then; `set` changes them (waiting, position n / running)."""

    def __init__(self, heartbeat_timeout_s: float) -> None:
        self.interval_s = min(MAX_INTERVAL_S, heartbeat_timeout_s / 3)
        self.details: dict[str, Any] = {"phase": "waiting"}
        self._task: asyncio.Task[None] | None = None

    def set(self, **details: Any) -> None:
        if details != self.details:
            self.details = details
            activity.heartbeat(details)

    async def _loop(self) -> None:
        while True:
            activity.heartbeat(self.details)
            await asyncio.sleep(self.interval_s)

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
