"""The nodes a worker hosts: their drivers, each with its own thread, and their gates."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from temporalio.client import Client

from ..engine.contracts import DEFAULT_TASK_QUEUE
from ..engine.ledger import WorkerInfo
from ..engine.models import StepResult
from ..engine.nodes import BaseNode, StepObserver
from ..engine.tasks import StepRequest
from .gate import NodeGate

T = TypeVar("T")
ObserverFactory = Callable[[StepRequest], StepObserver | None]
# (node id, reachable, why not) -> whether the ledger recorded it (a failed report is tried again).
ReachabilityReport = Callable[[str, bool, str | None], Awaitable[bool]]

# How often a worker asks its drivers whether their devices answer (`is_reachable()`).
PROBE_EVERY_S = 10.0

# How long a starting worker lets the steps already waiting for its nodes arrive before it admits the
# first: the server hands them over within a few hundred milliseconds, in no particular order.
GATE_SETTLE_S = 1.0
# How long the end of a use that succeeded waits for the node's next begin to carry it (one ledger write
# instead of two) before it is sent alone; meanwhile the ledger still names the finished step as holder.
FLUSH_S = 1.0


class DriverThread:
    """A node's own thread: its driver's calls run there one at a time, in the order they came. A node
    of capacity N has N of them on one queue: up to N steps drive it at once, as its ledger admits.

    Daemon threads: a driver that never returns (it ignored its abort) must not keep the worker process
    from ending; stopping the worker is then how an operator ends that call."""

    def __init__(self, name: str, count: int = 1) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._count = count
        self._unfinished = 0  # calls submitted and not over (read from the event loop: `idle`)
        self._counting = threading.Lock()  # submitted on the loop, over in a thread
        for number in range(count):
            label = name if count == 1 else f"{name}-{number + 1}"
            threading.Thread(target=self._serve, name=label, daemon=True).start()

    @property
    def idle(self) -> bool:
        """No driver call runs or waits here now."""
        return self._unfinished == 0

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._counting:
            self._unfinished += 1
        future.add_done_callback(self._over)
        self._queue.put((future, call))
        return future

    def _over(self, _: Future[Any]) -> None:
        with self._counting:
            self._unfinished -= 1

    def close(self) -> None:
        """Cancel the calls not begun yet; the thread ends after the one it runs (if any)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in range(self._count):
            self._queue.put(None)

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the caller through the future, as an executor does
                future.set_exception(exc)


class NodeHost:
    """Shared by the activities of one worker process."""

    def __init__(
        self,
        client: Client,
        nodes: dict[str, BaseNode],
        emulate: bool = False,
        worker: WorkerInfo | None = None,
        workflow_task_queue: str = DEFAULT_TASK_QUEUE,
        observers: ObserverFactory | None = None,
        capacities: dict[str, int] | None = None,
    ) -> None:
        self.client = client
        self._observers = observers  # the lab's own code around steps (a GLAS project's task hooks)
        self.workflow_task_queue = workflow_task_queue  # where a node's ledger runs
        self.nodes = nodes
        self.emulate = emulate
        self.worker = worker  # this process, as the ledgers record who runs a use
        # Each node's `capacity` (nodes.json): how many steps its gate admits at once.
        capacities = capacities or {}
        self.gates = {
            node_id: NodeGate(node_id, settle_s=GATE_SETTLE_S, capacity=capacities.get(node_id, 1))
            for node_id in nodes
        }
        # One thread per node: a driver is never called from two threads, and a stuck driver blocks
        # only its own node.
        self._threads = {
            node_id: DriverThread(f"node-{node_id}", self.gates[node_id].capacity) for node_id in nodes
        }
        # Per node: the driver call that did not stop when asked to abort, until its end is recorded.
        self._stuck: dict[str, asyncio.Task[None]] = {}
        # The holds this worker keeps (activities/holds.py), by "task/step/run": set when its task lets go.
        self.holds: dict[str, asyncio.Event] = {}
        # Ends of uses sent after their step returned (NodeUses.end_in_background).
        self._ending: set[asyncio.Task[None]] = set()
        self._flush_now = asyncio.Event()

    def node(self, node_id: str) -> BaseNode:
        return self.nodes[node_id]

    def observer(self, request: StepRequest) -> StepObserver | None:
        """The lab's own code to run around this step in the node's thread, if it has any; made there
        too (the lab's code may import, build, or wait on a lock: never on the event loop)."""
        factory = self._observers
        if factory is None or request.hooks is None:
            return None
        return _MadeInThread(lambda: factory(request))

    async def watch_reachability(
        self, known: dict[str, bool], report: ReachabilityReport, every_s: float = PROBE_EVERY_S
    ) -> None:
        """Ask each idle driver `is_reachable()` every `every_s`, and report each change from `known`
        (what the ledgers say); a step asks it itself before its driver runs. Idle only: a driver's
        calls are never made concurrently by us. In a daemon thread of its own, not the node's: a probe
        that hangs (a device switched off) must not hold the node's steps, nor the worker's exit. A
        probe that raises or does not answer within `every_s` counts as not reachable; a driver whose
        probe still runs is not asked again meanwhile."""
        probing: dict[str, asyncio.Future[bool]] = {}
        while True:
            for node_id, node in self.nodes.items():
                if not self._threads[node_id].idle:
                    continue
                reachable, why = await _probe(node, probing, every_s)
                if known.get(node_id, True) != reachable and await report(node_id, reachable, why):
                    known[node_id] = reachable
            await asyncio.sleep(every_s)

    def in_driver_thread(self, node_id: str, call: Callable[..., T], *args: object) -> asyncio.Future[T]:
        future = asyncio.wrap_future(self._threads[node_id].submit(functools.partial(call, *args)))
        future.add_done_callback(_retrieve)
        return future

    def keep_stuck(self, node_id: str, late_end: asyncio.Task[None]) -> None:
        """A driver call that did not stop within its abort grace still occupies the node's thread;
        `late_end` records its end in the ledger when the driver returns."""
        self._stuck[node_id] = late_end
        late_end.add_done_callback(lambda _: self._stuck.pop(node_id, None))

    def keep_ending(self, node_id: str, ending: asyncio.Task[None]) -> None:
        """The end of a use on its way to the ledger after its step returned: kept until it arrives,
        and waited for when the worker stops (`settle_ends`)."""
        self._ending.add(ending)
        ending.add_done_callback(lambda done: _ended(self, node_id, done))

    async def flush_due(self) -> None:
        """Return after FLUSH_S, or at once when the worker stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flush_now.wait(), FLUSH_S)

    async def settle_ends(self) -> None:
        """Send the deferred ends now and wait until every one has arrived (a clean stop)."""
        self._flush_now.set()
        while self._ending:
            await asyncio.wait(set(self._ending))

    def stuck(self, node_id: str) -> bool:
        """Whether the node's thread is still held by a driver call that ignored its abort."""
        return node_id in self._stuck

    async def shutdown(self) -> None:
        """The worker stops: each driver releases its device (`_shutdown`, the seed's hook) in its own
        thread, after its last step; a driver that fails to is logged, the others still run theirs. A
        node whose driver still runs a call it was asked to abort is left alone: `_shutdown` would wait
        behind that call for ever."""
        await self.settle_ends()
        for node_id, node in self.nodes.items():
            if self.emulate:
                continue
            if self.stuck(node_id):
                node.logger.error(
                    "its driver still runs a call it was asked to abort; _shutdown() not called"
                )
                continue
            try:
                await self.in_driver_thread(node_id, node._shutdown)
            except Exception:  # driver code: report it, shut the others down all the same
                node.logger.exception("_shutdown() failed")

    def close(self) -> None:
        for late_end in list(self._stuck.values()):
            late_end.cancel()  # the ledger accounts for that use when a worker hosts the node again
        for thread in self._threads.values():
            thread.close()


async def _probe(
    node: BaseNode, probing: dict[str, asyncio.Future[bool]], timeout_s: float
) -> tuple[bool, str | None]:
    """One `is_reachable()` of `node`: whether it answered True, and why not."""
    future = probing.get(node.id)
    if future is None or future.done():
        future = probing[node.id] = _in_daemon_thread(node.is_reachable, f"probe-{node.id}")
    done, _ = await asyncio.wait({future}, timeout=timeout_s)
    if not done:
        return False, f"its driver's is_reachable() has not answered for {timeout_s:g} s"
    if future.exception() is not None:
        error = future.exception()
        return False, f"its driver's is_reachable() raised {type(error).__name__}: {error}"
    if not future.result():
        return False, "its driver's is_reachable() says the device does not answer"
    return True, None


class _MadeInThread:
    """A step observer made by its first call, in the thread that runs the step."""

    def __init__(self, make: Callable[[], StepObserver | None]) -> None:
        self._make = make
        self._made: StepObserver | None = None

    def before_step(self) -> None:
        self._made = self._make()
        if self._made is not None:
            self._made.before_step()

    def after_step(self, result: StepResult) -> None:
        if self._made is not None:
            self._made.after_step(result)


def _in_daemon_thread(call: Callable[[], T], name: str) -> asyncio.Future[T]:
    """`call()` in a daemon thread of its own (asyncio's default executor is waited for at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            outcome = functools.partial(future.set_result, call())
        except Exception as exc:  # the driver's: handed to the caller
            outcome = functools.partial(future.set_exception, exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: the worker stopped meanwhile
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _ended(host: NodeHost, node_id: str, done: asyncio.Task[None]) -> None:
    host._ending.discard(done)
    if not done.cancelled() and done.exception() is not None:
        host.node(node_id).logger.error("the end of a use could not be recorded: {}", done.exception())


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Read a call's error, so that one nobody awaits any more (a withdrawn call, a call that ended
    after its step gave it up) is not logged as "never retrieved"."""
    if not future.cancelled():
        future.exception()
