"""Running a command of ours from the command line: an async command with our errors reported inside
its event loop, and SIGINT / SIGTERM as the event that stops it. Light on purpose: a worker's process
imports it, and must not load the API's code (FastAPI, uvicorn) with it."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Awaitable, Callable

from .engine.errors import TaskSchedulerError


def stop_event_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def run_async(command: Callable[[], Awaitable[object]]) -> int:
    """Run an async command, reporting our errors inside the event loop: the Temporal client (and its
    native threads) is then released before the interpreter shuts down, which otherwise can abort."""

    async def guarded() -> int:
        try:
            await command()
        except TaskSchedulerError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        return 0

    code = asyncio.run(guarded())
    gc.collect()
    return code
