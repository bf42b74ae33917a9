"""The task and node state machines (`transitions`), usable inside a Temporal workflow.

Deterministic: no threads of its own, no clocks, no I/O. A machine is rebuilt from a stored state value
(after a continue-as-new or a replay) with no enter callbacks firing. Guards read plain attributes of
the machine (steps done, the holder).
"""

from __future__ import annotations

import threading
from enum import StrEnum
from typing import Any

from transitions import Machine

from .errors import InvalidTransitionError


class TaskState(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    ERROR = "ERROR"
    FINISHED = "FINISHED"
    CANCELLED = "CANCELLED"


class NodeState(StrEnum):
    OFFLINE = "OFFLINE"
    AVAILABLE = "AVAILABLE"
    IN_USE = "IN_USE"
    ERROR = "ERROR"
    RECOVERY = "RECOVERY"


T = TaskState
TASK_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start", "source": T.PENDING, "dest": T.ACTIVE},
    {"trigger": "pause", "source": [T.PENDING, T.ACTIVE], "dest": T.PAUSED},
    {"trigger": "resume", "source": T.PAUSED, "dest": T.ACTIVE},
    {"trigger": "fail", "source": T.ACTIVE, "dest": T.ERROR},
    {"trigger": "recover", "source": T.ERROR, "dest": T.ACTIVE},
    {"trigger": "finish", "source": T.ACTIVE, "dest": T.FINISHED, "conditions": "all_steps_done"},
    {"trigger": "cancel", "source": [T.PENDING, T.ACTIVE, T.PAUSED, T.ERROR], "dest": T.CANCELLED},
]

N = NodeState
NODE_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "come_online", "source": [N.OFFLINE, N.AVAILABLE], "dest": N.AVAILABLE},
    {"trigger": "acquire", "source": N.AVAILABLE, "dest": N.IN_USE, "conditions": "is_free"},
    # A hand-off: the next holder's begin closes the previous use in one step.
    {"trigger": "hand_over", "source": N.IN_USE, "dest": N.IN_USE},
    {"trigger": "release", "source": N.IN_USE, "dest": N.AVAILABLE},
    {"trigger": "fail", "source": [N.AVAILABLE, N.IN_USE, N.RECOVERY], "dest": N.ERROR},
    # Never restart a device in the middle of a step: IN_USE is not a source.
    {"trigger": "restart", "source": [N.OFFLINE, N.AVAILABLE, N.ERROR], "dest": N.RECOVERY},
    {"trigger": "recovered", "source": N.RECOVERY, "dest": N.AVAILABLE},
    {"trigger": "go_offline", "source": [N.AVAILABLE, N.ERROR, N.OFFLINE], "dest": N.OFFLINE},
]


class _StateMachine:
    """A task's or a node's state, moved by a `transitions` machine, raising our own error for an
    impossible command.

    Building a `transitions` machine costs about 20 KB (its states, events and the methods it binds on
    its model): one per cached task was 10 MB of the worker at 500 tasks. So one machine of each kind
    per thread (workflow activations run in a thread pool) serves every instance: it is set to the
    instance's state, fired, and read back. Its model is a scratch object whose guards read the instance
    (trigger names such as `pause` would clash with workflow methods on a model of our own).
    """

    kind = "thing"
    transitions_table: list[dict[str, Any]] = []
    states: type[StrEnum] = StrEnum
    _shared: threading.local  # each subclass has its own

    def __init_subclass__(cls) -> None:
        cls._shared = threading.local()

    def __init__(self, state: str) -> None:
        self._state = self.states(state)

    @property
    def state(self) -> Any:
        return self._state

    def can(self, command: str) -> bool:
        """True if `command` is allowed now (its source state matches and its guards pass)."""
        if command not in {t["trigger"] for t in self.transitions_table}:
            return False
        return bool(getattr(self._scratch(), f"may_{command}")())

    def commands(self) -> list[str]:
        return [t["trigger"] for t in self.transitions_table if self.can(t["trigger"])]

    def trigger(self, command: str, reason: str | None = None) -> None:
        if not self.can(command):
            raise InvalidTransitionError(self.kind, self.state.value, command, reason)
        scratch = self._scratch()
        scratch.trigger(command)
        self._state = self.states(scratch.state)

    def _scratch(self) -> Any:
        """This thread's machine's model, set to this instance's state and reading its guards."""
        shared = self._shared
        if not hasattr(shared, "machine"):
            shared.model = _Scratch()
            shared.machine = Machine(
                model=shared.model,
                states=list(self.states),
                transitions=self.transitions_table,
                initial=self._state,
                auto_transitions=False,
                send_event=False,
            )
        shared.model.owner = self
        shared.machine.set_state(self._state, model=shared.model)
        return shared.model


class _Scratch:
    """The shared machine's model: its guards are the instance's (`_StateMachine._scratch`)."""

    owner: Any = None

    def all_steps_done(self) -> bool:
        return bool(self.owner.steps_done >= self.owner.steps_total)

    def is_free(self) -> bool:
        return self.owner.holder is None


class TaskMachine(_StateMachine):
    """PENDING -> ACTIVE <-> PAUSED, ACTIVE -> ERROR -> ACTIVE, and FINISHED / CANCELLED at the end."""

    kind = "task"
    transitions_table = TASK_TRANSITIONS
    states = TaskState

    def __init__(self, state: str = TaskState.PENDING, steps_total: int = 0, steps_done: int = 0) -> None:
        super().__init__(state)
        self.steps_total = steps_total
        self.steps_done = steps_done

    def set_progress(self, steps_done: int) -> None:
        self.steps_done = steps_done

    def continue_command(self) -> str:
        """The trigger an operator's "continue" fires in the current state."""
        return "recover" if self.state is TaskState.ERROR else "resume"

    @property
    def is_over(self) -> bool:
        return self.state in (TaskState.FINISHED, TaskState.CANCELLED)


class NodeMachine(_StateMachine):
    """OFFLINE -> AVAILABLE <-> IN_USE, -> ERROR -> RECOVERY -> AVAILABLE."""

    kind = "node"
    transitions_table = NODE_TRANSITIONS
    states = NodeState

    def __init__(self, state: str = NodeState.OFFLINE, holder: Any = None) -> None:
        super().__init__(state)
        self.holder = holder

    def set_holder(self, holder: Any) -> None:
        self.holder = holder
