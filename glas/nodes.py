"""`task_scheduler.nodes.base.BaseNode`: the one node contract (engine/nodes.py), with the seed's node
object around it: `state`, `mu`, `serialize()`, `restart()`, `set_error()`... for the lab's own code.

`state` mirrors, in the process that drives the node, what its steps and restarts did (IN_USE while a
step runs, ERROR after a failed one, AVAILABLE after a restart); the node's ledger is the truth the API
shows (GET /nodes/{id}, and the seed's node models). `mu` is held while a step runs, as the seed held it:
a lab's own code that takes it waits for the step in progress.
"""

from __future__ import annotations

import threading
from typing import Any

from ..engine.models import NodeRef, StepResult
from ..engine.nodes import BaseNode as ContractNode
from ..engine.nodes import DriverStep
from ..engine.seed import BaseNodeModel, NodeState


class BaseNode(ContractNode):
    """One instrument or robot. Subclass it, implement `_execute`; the class name is its `type`."""

    _base_class = True  # not a node type of its own

    def __init__(self, _id: str, name: str, properties: dict[str, Any] | None = None) -> None:
        super().__init__(_id, name, properties)
        self.state = NodeState.AVAILABLE
        self.mu = threading.Lock()
        self._task_id: str | None = None

    def __repr__(self) -> str:
        return self.name

    def _run_driver(self, step: DriverStep) -> StepResult:
        if self.capacity > 1:  # several steps at once, as the lab configured it: `mu` is not theirs
            return super()._run_driver(step)
        with self.mu:
            self.state, self._task_id = NodeState.IN_USE, step.task_id
            result = None
            try:
                result = super()._run_driver(step)
                return result
            finally:
                self.state = NodeState.AVAILABLE if result and result.succeeded else NodeState.ERROR
                self._task_id = None

    def restart_device(self) -> tuple[bool, str | None]:
        ok, message = super().restart_device()
        self.state = NodeState.AVAILABLE if ok else NodeState.ERROR
        return ok, message

    # --- the seed's node object -------------------------------------------------------------------

    def execute(
        self, db: Any, task_id: str, workflow: Any, src: Any, dst: Any, args: Any = None, save: bool = True
    ) -> tuple[int, str | None]:
        """Run one step here and now (the seed's wrapper): `(status, message)`, message None on success."""
        result = self.run_step(
            _ref(src), _ref(dst), task_id, args, workflow_name=getattr(workflow, "name", "")
        )
        return result.status, None if result.succeeded else result.message

    def serialize(self) -> BaseNodeModel:
        online = self.is_reachable()
        return BaseNodeModel(
            id=self.id, name=self.name, status=self.state.name, online=online, task_id=self._task_id
        )

    def is_usable(self) -> bool:
        return self.is_reachable() and not self.is_error()

    def save_properties(self, db: Any) -> None:
        """Empty, as the seed's: for the lab's own subclasses."""

    def restart(self) -> int:
        """Restart the device now, in the calling thread: 0 if it worked (the seed's)."""
        ok, message = self.restart_device()
        if not ok:
            self.logger.error("restart failed: {}", message)
        return 0 if ok else 1

    def shutdown(self) -> None:
        status = self._shutdown()
        if status not in (None, 0):
            self.logger.error("shutdown failed: {}", status)

    def is_error(self) -> bool:
        return self.state is NodeState.ERROR

    def is_available(self) -> bool:
        return self.state is NodeState.AVAILABLE

    def set_error(self, message: str = "No Comment") -> None:
        self.state = NodeState.ERROR
        self.logger.error(message)

    def set_available(self) -> None:
        self.state = NodeState.AVAILABLE

    def set_in_use(self) -> None:
        self.state = NodeState.IN_USE


def _ref(node: Any) -> NodeRef | None:
    """A node object as the light reference drivers are given (`src`, `dst`)."""
    if node is None or isinstance(node, NodeRef):
        return node
    return NodeRef(id=node.id, name=node.name, type=type(node).__name__)
