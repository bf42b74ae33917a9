"""How the seed's synchronous objects (a GLAS project's orchestrator and tasks, the seed's route
handlers, plain `def`s as in the seed) act on the durable lab: our services are async and run on the
API's event loop; a call from another thread runs its coroutine there and waits for the answer.

One runtime per process: the scheduler's (`BaseScheduler.run()`, or the API of `task-scheduler dev`
and `api`) is the current one, which the seed's `Task` objects use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..engine.errors import SchedulerUnavailableError

if TYPE_CHECKING:
    from .operations import SeedOperations

T = TypeVar("T")

# A call waits this long for its answer (an operation waits on Temporal, bounded by its rpc timeouts).
CALL_TIMEOUT_S = 120.0
TASKS_KEPT = 1000

# Who called the seed's route now running (its token's name): the seed's objects take no such argument,
# so the route's guard sets it and the operations it leads to record it as the operator.
caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("seed_caller", default=None)


class SeedRuntime:
    def __init__(self, operations: SeedOperations) -> None:
        self.operations = operations
        self.loop: asyncio.AbstractEventLoop | None = None
        self._calls: set[concurrent.futures.Future[Any]] = set()
        # The seed's Task objects the lab's `add_task` made here, by task id (newest TASKS_KEPT): their
        # step hooks run around their steps, and a lab's subclass may keep its own state between them.
        self.tasks: OrderedDict[str, Any] = OrderedDict()

    def remember(self, task_id: str, task: Any) -> None:
        self.tasks[task_id] = task
        self.tasks.move_to_end(task_id)
        while len(self.tasks) > TASKS_KEPT:
            self.tasks.popitem(last=False)

    def close(self) -> None:
        """The scheduler stops: calls under way end (CancelledError), later ones are refused."""
        self.loop = None
        for call in list(self._calls):
            call.cancel()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the API serves on (set by the first seed route, or by the scheduler's `run()`)."""
        self.loop = loop

    def call(self, make: Callable[[], Awaitable[T]], timeout_s: float = CALL_TIMEOUT_S) -> T:
        """Run `make()` on the API's loop from this (other) thread; its result, or its exception."""
        loop = self.loop
        if loop is None or loop.is_closed():
            raise SchedulerUnavailableError(
                "the scheduler is not serving yet: the seed's objects act on the lab once "
                "BaseScheduler.run() (or the API) has started"
            )
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            raise RuntimeError(
                "a seed object's method was called on the API's event loop (an `async def` route?): call "
                "it from a plain `def` route, as the seed's were, or from a thread"
            )

        async def run() -> T:
            return await make()

        call = asyncio.run_coroutine_threadsafe(run(), loop)
        self._calls.add(call)
        try:
            return call.result(timeout_s)
        except concurrent.futures.TimeoutError as exc:
            call.cancel()
            raise SchedulerUnavailableError(f"the scheduler did not answer within {timeout_s:g} s") from exc
        finally:
            self._calls.discard(call)


_current: SeedRuntime | None = None


def install(runtime: SeedRuntime) -> None:
    global _current
    _current = runtime


def current() -> SeedRuntime:
    if _current is None:
        raise SchedulerUnavailableError(
            "no scheduler runs in this process: the seed's objects act on the lab once BaseScheduler.run() "
            "(or the API) has started"
        )
    return _current
