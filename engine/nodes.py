"""BaseNode: the driver contract of the seed, unchanged, plus StepResult outputs, async drivers,
an abort hook (asked per call: DriverCall) and emulation."""

from __future__ import annotations

import asyncio
import errno
import inspect
import random
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from .errors import DriverResultError, StepAbortedError, StepWithdrawnError
from .logger import NodeLogger
from .models import EmulationConfig, NextExecution, NodeRef, StepResult


class StepObserver(Protocol):
    """Code of the lab's own that runs around a step, in the node's thread (the seed's task hooks)."""

    def before_step(self) -> None: ...

    def after_step(self, result: StepResult) -> None: ...


@dataclass
class DriverStep:
    """What a driver's hooks are given for one step (the seed's arguments)."""

    task_id: str
    workflow_name: str = ""
    src: NodeRef | None = None
    dst: NodeRef | None = None
    args: dict[str, Any] | None = None
    observer: StepObserver | None = None


class BaseNode:
    """One instrument or robot. Subclass it and implement `_execute`; the class name is its `type`."""

    registry: ClassVar[dict[str, list[type[BaseNode]]]] = {}

    def __init__(self, _id: str, name: str, properties: dict[str, Any] | None = None) -> None:
        self.id = _id
        self.name = name
        self.properties: dict[str, Any] = dict(properties or {})
        self.emulation = EmulationConfig()
        # How many steps may drive it at once (nodes.json's `capacity`): above 1, its calls come from
        # that many threads together, each with its own DriverCall.
        self.capacity = 1
        self.logger = NodeLogger(_id)
        self._call: DriverCall | None = None  # the call the node's thread runs now (the latest one)
        # Each driver thread's own call: a node of capacity > 1 runs several at once, and a driver
        # reading `abort_requested` in `_execute` must hear of its own step's abort, not another's.
        self._calls = threading.local()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_base_class", False):
            return  # a base for drivers (the seed's import path), not a node type
        same_name = BaseNode.registry.setdefault(cls.__name__, [])
        # A module imported twice under two names defines the "same" class twice; keep one.
        same_name[:] = [c for c in same_name if _qualified(c) != _qualified(cls)]
        same_name.append(cls)

    @property
    def emulation(self) -> EmulationConfig:
        return self._emulation

    @emulation.setter
    def emulation(self, spec: EmulationConfig) -> None:
        self._emulation = spec
        self._emulation_rng = random.Random(spec.seed)

    @property
    def type(self) -> str:
        return type(self).__name__

    def ref(self) -> NodeRef:
        return NodeRef(id=self.id, name=self.name, type=self.type, properties=self.properties)

    # --- the seed's driver hooks -------------------------------------------------------------------

    def _execute(
        self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: dict[str, Any] | None = None
    ) -> tuple[int, str | None, str | None] | StepResult | Awaitable[Any]:
        raise NotImplementedError(f"{self.type} does not implement _execute")

    def _pre_execution(
        self, task_id: str, wf_name: str, src: NodeRef | None, dst: NodeRef | None, args: Any = None
    ) -> None:
        """Called before `_execute`, with the task's lab workflow name (the seed's hook)."""

    def _post_execution(
        self,
        status: int,
        msg: str | None,
        task_id: str,
        wf_name: str,
        src: NodeRef | None,
        dst: NodeRef | None,
        args: Any = None,
    ) -> None:
        """Called after `_execute` succeeded (status 0), never after a failure (the seed's hook)."""

    def is_reachable(self) -> bool:
        """Whether the device answers: asked before each step (a step on a node that is not reachable
        fails without touching it) and every few seconds for the node's online state. Keep it quick."""
        return True

    def _restart(self) -> bool | int | None:
        """Bring the device back to a known state after an error. Return False (or, as the seed's
        drivers do, a non-zero status) if that failed."""
        return True

    def _shutdown(self) -> int | None:
        """Release the device (the worker is stopping)."""
        return None

    def _abort(self) -> None:
        """Stop the running `_execute` as soon as it is safe (an operator cancelled the task)."""

    def next_node_execution(self) -> Any:
        """Where an operator's "continue, next" goes after a failed step: this step again (SELF), or the
        next (NEXT); ours (`NextExecution`) or the seed's `NodeErrorNextStep`."""
        return NextExecution.NEXT

    # --- what the scheduler calls ------------------------------------------------------------------

    def run_step(
        self,
        src: NodeRef | None,
        dst: NodeRef | None,
        task_id: str,
        args: dict[str, Any] | None,
        emulate: bool = False,
        call: DriverCall | None = None,
        *,
        workflow_name: str = "",
        observer: StepObserver | None = None,
    ) -> StepResult:
        """Run one step in the calling thread (the node's own driver thread) and normalise its result.

        `call` is this step's call (`new_call`), which the scheduler aborts: a call aborted before it
        got here is withdrawn (StepWithdrawnError) without touching the device, and an abort of this
        call never reaches another. A node that is not reachable is not touched either: the step
        fails. `_post_execution` runs only after a successful `_execute` (the seed)."""
        call = call or self.new_call(task_id)
        self._call = self._calls.call = call
        try:
            if not call._begin():
                raise StepWithdrawnError(
                    f"node {self.id}: the step of task {task_id} was withdrawn before it reached the "
                    "driver (its task gave up); the device was not touched"
                )
            if emulate:
                return self._run_emulated(task_id, call)
            if not self.is_reachable():
                return StepResult(status=errno.EHOSTUNREACH, message=self.unreachable_text())
            return self._run_driver(DriverStep(task_id, workflow_name, src, dst, args, observer))
        finally:
            call._end()
            self._calls.call = None
            if self._call is call:
                self._call = None

    def _run_driver(self, step: DriverStep) -> StepResult:
        task_id, wf_name, src, dst, args = step.task_id, step.workflow_name, step.src, step.dst, step.args
        if step.observer is not None:
            step.observer.before_step()
        self._pre_execution(task_id, wf_name, src, dst, args)
        raw = self._execute(src, dst, task_id, args)
        if inspect.isawaitable(raw):
            raw = asyncio.run(_awaited(raw))
        return self._after_driver(step, to_step_result(raw, self.type))

    def _after_driver(self, step: DriverStep, result: StepResult) -> StepResult:
        """The hooks after `_execute` returned; one that raises fails the step, saying the device acted
        (the operator decides; no retry of its own)."""
        try:
            if step.observer is not None:
                step.observer.after_step(result)
            if result.succeeded:
                self._post_execution(
                    result.status,
                    result.message,
                    step.task_id,
                    step.workflow_name,
                    step.src,
                    step.dst,
                    step.args,
                )
        except Exception as exc:  # the lab's code
            self.logger.exception("a hook after _execute failed")
            said = f"{result.status} ({result.message or 'no message'})"
            return StepResult(
                status=-1,
                message=f"_execute returned {said}, then a hook after it raised {type(exc).__name__}: {exc}. "
                "The device did act: continue with next unless the step must run again",
                endpoint=result.endpoint,
                retryable=False,
            )
        return result

    def unreachable_text(self) -> str:
        return (
            f"node {self.id} is not reachable (its driver's is_reachable() says so); the device was not "
            "touched. Check it (power, cable, network), then continue the task"
        )

    def restart_device(self) -> tuple[bool, str | None]:
        """Run `_restart()`; whether it worked. False, or a non-zero status (the seed's drivers return
        0 for success), is a failure; None and True are success."""
        outcome = self._restart()
        status = isinstance(outcome, int) and not isinstance(outcome, bool)
        failed = outcome != 0 if status else outcome is False
        return (False, f"_restart() returned {outcome!r}") if failed else (True, None)

    def next_execution(self) -> NextExecution:
        """Where an operator's "continue, next" goes after a failed step of this node."""
        return NextExecution.of(self.next_node_execution())

    def new_call(self, task_id: str = "") -> DriverCall:
        """A call of this driver, not yet begun: hand it to `run_step`, abort it with `DriverCall.abort`."""
        return DriverCall(self, task_id)

    def abort(self) -> None:
        """Ask the running step (if any) to stop: wakes an emulated step, calls the driver's `_abort()`."""
        call = self._call
        if call is not None:
            call.abort()

    @property
    def abort_requested(self) -> bool:
        """Whether the step running now was asked to abort (read by a driver, in `_execute`): on a
        node of capacity > 1, the step this thread runs."""
        call = getattr(self._calls, "call", None) or self._call
        return call is not None and call.aborted

    def _run_emulated(self, task_id: str, call: DriverCall) -> StepResult:
        spec = self.emulation
        self.logger.info("[emulated] {} runs for task {} ({:.2f} s)", self.name, task_id, spec.duration_s)
        if call.wait_aborted(spec.duration_s):
            raise StepAbortedError(f"emulated step of {self.id} aborted")
        if spec.failure_rate and self._emulation_rng.random() < spec.failure_rate:
            self.logger.error("[emulated] {} failed (failure rate {})", self.name, spec.failure_rate)
            return StepResult(status=1, message=f"emulated failure of {self.id}")
        return StepResult(status=0, message=f"emulated {self.id}")


# The seed's hook signatures: a driver's override must take these arguments (after self).
SEED_HOOKS = {
    "_pre_execution": ("task_id", "wf_name", "src", "dst", "args"),
    "_post_execution": ("status", "msg", "task_id", "wf_name", "src", "dst", "args"),
}


def hook_problems(cls: type[BaseNode]) -> list[str]:
    """The hooks of a node class that cannot take the seed's arguments (written for the signatures
    this package had before: `(src, dst, task_id, args)`), each with what it must take."""
    problems = []
    for name, arguments in SEED_HOOKS.items():
        hook = getattr(cls, name)
        if hook is getattr(BaseNode, name):
            continue
        signature = inspect.signature(hook)
        try:
            signature.bind(None, *arguments)
        except TypeError:
            given, wanted = ", ".join(signature.parameters), ", ".join(arguments)
            problems.append(
                f"{cls.__name__}.{name}({given}) cannot take the seed's arguments: make it "
                f"{name}(self, {wanted}) (the hooks take the seed's arguments since 2026-12)"
            )
    return problems


class CallState(StrEnum):
    QUEUED = "QUEUED"  # waiting for the node's thread
    RUNNING = "RUNNING"  # in the driver
    OVER = "OVER"  # the driver returned (or raised)
    WITHDRAWN = "WITHDRAWN"  # aborted before it reached the driver: it never will


class DriverCall:
    """One call of a node's driver (one step), with an abort of its own.

    The node's thread begins and ends it (`run_step`); the scheduler aborts it from another thread. An
    abort before the call began withdraws it; an abort while it runs calls the driver's `_abort()`,
    under the lock that ends the call, so `_abort()` never reaches the call after it."""

    def __init__(self, node: BaseNode, task_id: str = "") -> None:
        self.node = node
        self.task_id = task_id
        self._lock = threading.Lock()
        self._aborted = threading.Event()
        self._state = CallState.QUEUED

    @property
    def state(self) -> CallState:
        return self._state

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def wait_aborted(self, timeout_s: float | None) -> bool:
        """Sleep until this call is asked to abort (True) or `timeout_s` passed (False)."""
        return self._aborted.wait(timeout_s)

    def abort(self) -> CallState:
        """Ask this call to stop; answers its state then: QUEUED means withdrawn (it will not run)."""
        with self._lock:
            first = not self._aborted.is_set()
            self._aborted.set()
            if first and self._state is CallState.RUNNING:
                self._call_driver_abort()
            return self._state

    def _call_driver_abort(self) -> None:
        try:
            self.node._abort()
        except Exception:  # driver code: the abort is still asked (abort_requested), report it
            self.node.logger.exception("_abort() failed")

    def _begin(self) -> bool:
        with self._lock:
            if self._aborted.is_set():
                self._state = CallState.WITHDRAWN
                return False
            self._state = CallState.RUNNING
            return True

    def _end(self) -> None:
        with self._lock:
            if self._state is CallState.RUNNING:
                self._state = CallState.OVER


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _qualified(cls: type) -> str:
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__qualname__}"


def _is_status(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def to_step_result(raw: Any, node_type: str = "node") -> StepResult:
    """Accept the seed's `(status, message, endpoint)` tuple or a StepResult."""
    if isinstance(raw, StepResult):
        return raw
    if isinstance(raw, tuple | list) and len(raw) == 3 and _is_status(raw[0]):
        status, message, endpoint = raw
        return StepResult(
            status=int(status),
            message=None if message is None else str(message),
            endpoint=None if endpoint is None else str(endpoint),
        )
    raise DriverResultError(
        f"{node_type}._execute returned {raw!r}; it must return (status, message, endpoint) or a StepResult"
    )
