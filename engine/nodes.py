"""BaseNode: the driver contract of the seed, unchanged, plus StepResult outputs, async drivers,
an abort hook and emulation."""

from __future__ import annotations

import asyncio
import inspect
import random
import threading
from collections.abc import Awaitable
from typing import Any, ClassVar

from .errors import DriverResultError, StepAbortedError
from .logger import NodeLogger
from .models import EmulationConfig, NextExecution, NodeRef, StepResult


class BaseNode:
    """One instrument or robot. Subclass it and implement `_execute`; the class name is its `type`."""

    registry: ClassVar[dict[str, list[type[BaseNode]]]] = {}

    def __init__(self, id: str, name: str, properties: dict[str, Any] | None = None) -> None:
        self.id = id
        self.name = name
        self.properties: dict[str, Any] = dict(properties or {})
        self.emulation = EmulationConfig()
        self.logger = NodeLogger(id)
        self._abort_requested = threading.Event()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
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

    def _pre_execution(self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: Any) -> None:
        """Called before `_execute` (the seed's hook)."""

    def _post_execution(self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: Any) -> None:
        """Called after `_execute` returned (the seed's hook)."""

    def is_reachable(self) -> bool:
        return True

    def _restart(self) -> bool | None:
        """Bring the device back to a known state after an error. Return False if that failed."""
        return True

    def _shutdown(self) -> None:
        """Release the device (the worker is stopping)."""

    def _abort(self) -> None:
        """Stop the running `_execute` as soon as it is safe (an operator cancelled the task)."""

    def next_node_execution(self) -> NextExecution:
        """Where an operator's "continue, next" goes after a failed step: this step again, or the next."""
        return NextExecution.NEXT

    # --- what the scheduler calls ------------------------------------------------------------------

    def run_step(
        self,
        src: NodeRef | None,
        dst: NodeRef | None,
        task_id: str,
        args: dict[str, Any],
        emulate: bool = False,
    ) -> StepResult:
        """Run one step in the calling thread (the node's own driver thread) and normalise its result.

        `_post_execution` runs only when `_execute` returned (as in the seed). An abort asked for before
        the step began is kept, so an emulated step ends at once."""
        try:
            if emulate:
                return self._run_emulated(task_id)
            self._pre_execution(src, dst, task_id, args)
            raw = self._execute(src, dst, task_id, args)
            if inspect.isawaitable(raw):
                raw = asyncio.run(_awaited(raw))
            result = to_step_result(raw, self.type)
            self._post_execution(src, dst, task_id, args)
            return result
        finally:
            self._abort_requested.clear()

    def abort(self) -> None:
        """Ask the running step to stop: wakes an emulated step, and calls the driver's `_abort()`."""
        self._abort_requested.set()
        self._abort()

    @property
    def abort_requested(self) -> bool:
        return self._abort_requested.is_set()

    def _run_emulated(self, task_id: str) -> StepResult:
        spec = self.emulation
        self.logger.info("[emulated] {} runs for task {} ({:.2f} s)", self.name, task_id, spec.duration_s)
        if self._abort_requested.wait(spec.duration_s):
            raise StepAbortedError(f"emulated step of {self.id} aborted")
        if spec.failure_rate and self._emulation_rng.random() < spec.failure_rate:
            self.logger.error("[emulated] {} failed (failure rate {})", self.name, spec.failure_rate)
            return StepResult(status=1, message=f"emulated failure of {self.id}")
        return StepResult(status=0, message=f"emulated {self.id}")


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
