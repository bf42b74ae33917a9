"""The seed's `Task`: one run of a workflow, as a GLAS project's code sees it. The run itself is a
durable TaskWorkflow; this object names it (its `uuid` is the task's id), follows its state, sends it
the seed's commands, and carries the project's own step hooks (`_pre_step_execution`,
`_post_step_execution`), which run around each step in the process that drives the step's node."""

from __future__ import annotations

import concurrent.futures
import errno
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..api.schemas import TaskPublic
from ..engine.errors import SchedulerUnavailableError, TaskSchedulerError
from ..engine.logger import NodeLogger
from ..engine.seed import OrchestratorErrorCodes, TaskModel, TaskState, seed_task_state
from ..engine.states import TaskState as OurTaskState
from . import runtime
from .log import LoggingManager

WAIT_POLL_S = 10.0  # `run()` asks whether the task is over this often (each ask waits on Temporal)
OVER = (OurTaskState.FINISHED, OurTaskState.CANCELLED)


class Task:
    def __init__(self, workflow: Any, args: dict[str, Any] | None = None) -> None:
        self._start_time = datetime.now()
        self._uuid: uuid.UUID | str = uuid.uuid4()
        self._workflow = workflow
        self._args = args
        self._state = TaskState.PENDING
        self._stop_flag = False
        self._current_step = -1
        self._pause_event = threading.Event()
        self._pause_condition = threading.Condition()
        self._logger: NodeLogger | None = None

    @property
    def logger(self) -> NodeLogger:
        """The task's logger (the seed's `self.logger`), made when first used: a view of a task made
        for a listing logs nothing and keeps none."""
        if self._logger is None:
            app = f"Task {self._uuid}: {self._workflow.name}"
            self._logger = LoggingManager.get_logger(f"task-{self._uuid}", app=app)
        return self._logger

    @logger.setter
    def logger(self, logger: NodeLogger) -> None:
        self._logger = logger

    @property
    def uuid(self) -> uuid.UUID | str:
        """The task's id: a UUID for a task started through the seed's API, our own id otherwise."""
        return self._uuid

    @property
    def task_id(self) -> str:
        return str(self._uuid)

    @property
    def workflow(self) -> Any:
        return self._workflow

    def serialize(self) -> TaskModel:
        return TaskModel(
            uuid=self.task_id,
            current_step=self._current_step,
            state=self._state.name,
            workflow=self._workflow.serialize(),
            args=self._args,
        )

    def hooks(self) -> str | None:
        """`module:Class` of this task's class if it has step hooks of its own (None: nothing to run)."""
        cls = type(self)
        own = (cls._pre_step_execution, cls._post_step_execution)
        if own == (Task._pre_step_execution, Task._post_step_execution):
            return None
        return f"{cls.__module__}:{cls.__qualname__}"

    def follow(self, status: TaskPublic) -> Task:
        """Take the durable task's state and step."""
        self._uuid = as_uuid(status.task_id)
        self._state = seed_task_state(status.state or OurTaskState.PENDING, status.pause_requested)
        self._current_step = status.current_step if status.current_step is not None else self._current_step
        return self

    # --- the seed's state helpers (this object's view; the durable task is the truth) ---------------

    def is_active(self) -> bool:
        return self._state is TaskState.ACTIVE

    def is_pending(self) -> bool:
        return self._state is TaskState.PENDING

    def is_finished(self) -> bool:
        return self._state is TaskState.FINISHED

    def is_error(self) -> bool:
        return self._state is TaskState.ERROR

    def set_active(self) -> None:
        self._state = TaskState.ACTIVE

    def set_pending(self) -> None:
        self._state = TaskState.PENDING

    def set_finished(self) -> None:
        self._state = TaskState.FINISHED

    def set_error(self) -> None:
        self._state = TaskState.ERROR

    def set_paused(self) -> None:
        self._state = TaskState.PAUSED

    def any_unreachable_node(self) -> tuple[bool, list[str]]:
        """Whether a node of the steps from the current one on does not answer, and which."""
        steps = self._workflow.steps[max(self._current_step, 0) :]
        unreachable = [step.id for step in steps if not step.is_reachable()]
        return bool(unreachable), unreachable

    # --- commands (the durable task's) --------------------------------------------------------------

    def pause_execution(self) -> int:
        """Pause the task after its step in progress; 0 if asked."""
        return self._command(lambda ops, who: ops.pause(self.task_id, who))

    def continue_execution(self) -> int:
        """Continue a paused task, or one stopped by a failed step (the next step, or the same one
        where the node's `next_node_execution()` says SELF); 0 if done."""
        return self._command(lambda ops, who: ops.proceed(self.task_id, who))

    def stop(self) -> None:
        """The seed interrupted the task for good; a durable task is paused after its step instead."""
        self._stop_flag = True
        self.pause_execution()

    def _command(self, send: Callable[[Any, str | None], Any]) -> int:
        seed = runtime.current()
        who = runtime.caller.get()
        outcome = seed.call(lambda: send(seed.operations, who))
        return 0 if outcome.code is OrchestratorErrorCodes.OK else 1

    # --- the project's step hooks -------------------------------------------------------------------

    def _pre_step_execution(self, current_node: Any, src_node: Any, dst_node: Any) -> None:
        """Runs before each step, with the step's node objects (src None at the first step)."""

    def _post_step_execution(
        self, status: int, message: str | None, current_node: Any, src_node: Any, dst_node: Any
    ) -> None:
        """Runs after each step's `_execute` returned, a failed one too (dst None at the last step)."""

    # --- the seed's thread target -------------------------------------------------------------------

    def run(self, callback: Callable[[threading.Thread, Task], None] | None = None) -> int:
        """Start the task (if `add_task` did not) and follow it until it is over; then `callback(thread,
        task)`. 0 if it finished; EINTR if the scheduler stopped meanwhile (the task goes on, durable)."""
        seed = runtime.current()
        try:
            seed.call(lambda: seed.operations.ensure_started(self))
            while self._follow_once(seed):
                pass
        except (SchedulerUnavailableError, concurrent.futures.CancelledError):
            return errno.EINTR
        except TaskSchedulerError as exc:  # e.g. the lab stopped taking tasks before it started
            self.logger.error("the task could not run: {}", exc.message)
            return 1
        if callback is not None:
            callback(threading.current_thread(), self)
        return 0 if self._state is TaskState.FINISHED else 1

    def _follow_once(self, seed: runtime.SeedRuntime) -> bool:
        """Wait a while for the task to end; whether it still runs."""
        status = seed.call(lambda: seed.operations.wait_over(self.task_id, WAIT_POLL_S))
        if status is None:
            return False
        self.follow(status)
        return status.state not in OVER


def as_uuid(task_id: str) -> uuid.UUID | str:
    try:
        return uuid.UUID(task_id)
    except ValueError:
        return task_id
