"""The seed's `BaseOrchestrator`: a GLAS project subclasses it and builds its lab in its own code
(`_load_nodes`, `_load_workflows`). What the loaders build becomes our configuration (checked like
nodes.json, every problem located, engine/objects.py); the worker drives those very node objects; and
its methods act on the durable lab: tasks are Temporal workflows, not threads of this process.

What stays the seed's: the loaders get open files (the files of `-n`/`-w`, or a reload's uploads), the
start and stop callbacks are called, the error codes are the seed's. What differs, on purpose: a load
that fails changes nothing (the seed left the lab half loaded); `stop()` stops taking new tasks and
pauses the running ones after their step (the seed killed them), and `start()` takes tasks again and
resumes what the stop paused; both are durable (every API process sees them).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import IO, Any, BinaryIO, TypeVar

from ..engine.config import LabConfig
from ..engine.errors import TaskSchedulerError
from ..engine.nodes import StepObserver
from ..engine.seed import DBWorkflowModel, OrchestratorErrorCodes, OrchestratorState
from ..engine.tasks import StepRequest
from . import runtime
from .database import DatabaseConnector, DBStep, DBWorkflow
from .hooks import task_hooks
from .loading import LoaderConfigError, read_lab
from .log import LoggingManager
from .nodes import BaseNode
from .task import Task
from .workflow import Workflow

T = TypeVar("T")
Codes = OrchestratorErrorCodes
log = logging.getLogger("task_scheduler.app.Orchestrator")

EMULATION_BANNER = """
+------------------------------------------------------------------------------+
|  EMULATION MODE: the orchestrator was started with --emulate. The lab's own  |
|  node code decides what that means; nothing else changes.                   |
+------------------------------------------------------------------------------+
"""


class BaseOrchestrator(ABC):
    def __init__(
        self, nodes_path: str, workflows_path: str, *flags: bool, emulate: bool | None = None
    ) -> None:
        # The seed's signature is (nodes, workflows, emulate); its README's run.py passes (nodes,
        # workflows, verbose, emulate): the last flag is `emulate` either way.
        self.logger = LoggingManager.get_logger("orchestrator", app="Orchestrator")
        self._emulate = bool(flags[-1] if flags else False) if emulate is None else emulate
        self._state = OrchestratorState.STOPPED
        if self._emulate:
            print(EMULATION_BANNER, flush=True)
        self._nodes_path = nodes_path
        self._workflows_path = workflows_path
        self._nodes: list[Any] = []
        self._workflows: list[Any] = []
        self._terminate_event = threading.Event()
        self._running_mutex = threading.Lock()
        self._running_tasks: list[tuple[Any, Task]] = []
        self._stop_callback: Callable[[], None] = lambda: None
        self._start_callback: Callable[[], None] = lambda: None
        self.lab_config: LabConfig | None = None  # our configuration of what the loaders built
        self.problems: TaskSchedulerError | None = None  # why the last load failed
        self._driven: dict[str, Any] | None = None  # the node objects the worker drives, once it runs
        self._why = threading.local()  # per thread (route): why the lab refused its last command
        self._loading = threading.RLock()  # held by a load (its loaders may read the lab, in its thread)
        self._seed: runtime.SeedRuntime | None = None  # the runtime of the scheduler serving it

    @abstractmethod
    def _load_workflows(self, file: IO[bytes]) -> OrchestratorErrorCodes:
        """Append the lab's `Workflow`s to `self._workflows`, reading `file` (open, binary)."""

    @abstractmethod
    def _load_nodes(self, file: IO[bytes]) -> OrchestratorErrorCodes:
        """Append the lab's node objects to `self._nodes`, reading `file` (open, binary)."""

    def register_stop_callback(self, callback: Callable[[], None]) -> None:
        self._stop_callback = callback

    def register_start_callback(self, callback: Callable[[], None]) -> None:
        self._start_callback = callback

    @property
    def nodes(self) -> list[Any]:
        return self._nodes

    @property
    def workflows(self) -> list[Any]:
        return self._workflows

    @property
    def state(self) -> OrchestratorState:
        """RUNNING while the lab takes tasks (the durable switch, once the scheduler serves)."""
        if self._state is OrchestratorState.ERROR:
            return self._state
        accepting = self._durable(lambda ops: ops.accepting(), None)
        if accepting is None:
            return self._state
        return OrchestratorState.RUNNING if accepting else OrchestratorState.STOPPED

    def is_running(self) -> bool:
        accepting = self._durable(lambda ops: ops.accepting(), None)
        return not self._terminate_event.is_set() if accepting is None else bool(accepting)

    @property
    def running_tasks(self) -> list[tuple[Any, Task]]:
        """Every unfinished task of the lab (paused and failed ones too): `(None, task)`, as the seed's
        `(thread, task)` pairs; no thread runs a task here."""
        statuses = self._call(lambda ops: ops.unfinished())
        return [(None, self._task_view(status)) for status in statuses]

    @classmethod
    def get_all_db_workflows(cls) -> list[DBWorkflowModel]:
        return DBWorkflow.get_all(DatabaseConnector())

    @classmethod
    def get_steps(cls, workflow_id: int) -> list[dict[str, Any]]:
        return DBStep.get_all_for_workflow(DatabaseConnector(), workflow_id)

    def _remove_finished_task(self, task_thread: Any, task: Task) -> None:
        with self._running_mutex:
            if (task_thread, task) in self._running_tasks:
                self._running_tasks.remove((task_thread, task))

    def get_task_by_id(self, task_id: str) -> Task | None:
        """An unfinished task of the lab (the seed knew only its running ones)."""
        status = self._call(lambda ops: ops.find(task_id))
        if status is None or status.closed_at is not None:
            return None
        return self._task_view(status)

    def get_node_by_id(self, node_id: str) -> Any | None:
        with self._loading:
            return next((node for node in self._nodes if node.id == node_id), None)

    def get_workflow_by_name(self, name: str) -> Any | None:
        with self._loading:
            return next((w for w in self._workflows if w.name == name), None)

    def loaded(self) -> tuple[list[Any], list[Any]]:
        """The nodes and workflows as the last load left them (never in the middle of a load)."""
        with self._loading:
            return list(self.nodes), list(self.workflows)

    def _set_error(self, message: str | None = None) -> None:
        self._state = OrchestratorState.ERROR
        if message is not None:
            self.logger.error(message)

    # --- configuration -----------------------------------------------------------------------------

    def load_config(
        self, nodes_config: BinaryIO | None = None, workflows_config: BinaryIO | None = None
    ) -> OrchestratorErrorCodes:
        """Run the lab's loaders on the files of `-n`/`-w` (or the uploads given), check what they built
        and take it as the lab's configuration. On any problem nothing changes: the code says which
        kind, `self.problems` every problem, located."""
        with self._loading:  # readers (routes, step hooks) never see a half-loaded lab
            self.problems = None
            before = (list(self._nodes), list(self._workflows))
            try:
                self._take(self._read(nodes_config, workflows_config))
            except BaseException as exc:
                self._nodes[:], self._workflows[:] = before
                if not isinstance(exc, TaskSchedulerError):
                    raise
                self.problems = exc
                self.logger.error("the configuration was not loaded: {}", exc.message)
                return exc.code if isinstance(exc, LoaderConfigError) else Codes.COULD_NOT_PARSE_CONFIGURATION
        self.logger.success(f"loaded {len(self.nodes)} nodes and {len(self.workflows)} workflows")
        return Codes.OK

    def _read(self, nodes_config: BinaryIO | None, workflows_config: BinaryIO | None) -> LabConfig:
        return read_lab(self, nodes_config, workflows_config)

    def _take(self, lab: LabConfig) -> None:
        """Serve `lab` (once the scheduler runs: refused if the running worker cannot apply it); the
        workflows then name the node objects the worker drives."""
        if self._driven is not None:
            driven = set(self._driven)
            self._call(lambda ops: ops.serve_lab(lab, driven))
            self._nodes[:] = [self._driven[node.id] for node in lab.nodes]
            for workflow in self._workflows:
                workflow.steps = [self._driven.get(step.id, step) for step in workflow.steps]
                workflow.source, workflow.destination = workflow.steps[0], workflow.steps[-1]
        self.lab_config = lab

    def drive(self) -> dict[str, Any]:
        """The node objects the worker is to drive (those the loaders built at start), by node id."""
        self._driven = {node.id: node for node in self._nodes}
        return self._driven

    # --- start and stop ----------------------------------------------------------------------------

    def start(self) -> OrchestratorErrorCodes:
        """Load the configuration from the files (again), and take tasks; CANCELLED if taking them."""
        if self.state is OrchestratorState.RUNNING:
            return Codes.CANCELLED
        self._terminate_event.clear()
        code = self.load_config()
        if code is not Codes.OK:
            self._state = OrchestratorState.ERROR
            return code
        if self._serving() and not self._call(lambda ops: ops.start_intake(runtime.caller.get())):
            return Codes.CANCELLED
        self._state = OrchestratorState.RUNNING
        self._start_callback()
        return Codes.OK

    def stop(self) -> OrchestratorErrorCodes:
        """Take no new tasks and pause the running ones after their step; CANCELLED if stopped."""
        if self.state is OrchestratorState.STOPPED:
            return Codes.CANCELLED
        self._stop_callback()
        self._terminate_event.set()
        if self._serving():
            self._call(lambda ops: ops.stop_intake(runtime.caller.get()))
        self._state = OrchestratorState.STOPPED
        return Codes.OK

    def stopped_with_process(self) -> None:
        """The scheduler's process stops: the stop callback runs; the lab's switch stays as it is."""
        self._state = OrchestratorState.STOPPED
        self._stop_callback()

    # --- tasks and nodes ---------------------------------------------------------------------------

    def add_task(self, workflow: Any, args: dict[str, Any] | None = None) -> Task:
        """Start a task of `workflow` (durable from the moment this returns). A project's override may
        build a Task subclass of its own (its step hooks then run around the task's steps)."""
        task = Task(workflow, args)
        seed = self._runtime()
        seed.remember(task.task_id, task)
        seed.call(lambda: seed.operations.start_task(task.task_id, workflow.name, args, task.hooks()))
        return task

    def pause_task(self, uuid: str) -> OrchestratorErrorCodes:
        return self._command(lambda ops: ops.pause(uuid, runtime.caller.get()))

    def continue_task(self, uuid: str) -> OrchestratorErrorCodes:
        return self._command(lambda ops: ops.proceed(uuid, runtime.caller.get()))

    def restart_node(self, node_id: str) -> OrchestratorErrorCodes:
        return self._command(lambda ops: ops.restart(node_id, runtime.caller.get()))

    def refusal(self) -> str | None:
        """Why the lab refused the last command this thread sent (a route's answer says it)."""
        return getattr(self._why, "text", None)

    def _command(self, operation: Callable[[Any], Any]) -> OrchestratorErrorCodes:
        outcome = self._call(operation)
        self._why.text = outcome.why
        code: Codes = outcome.code
        return code

    def step_hooks(self, request: StepRequest) -> StepObserver | None:
        """The task's own step hooks around this step (its Task object, made again after a restart)."""
        return task_hooks(self, self._runtime(), request)

    def _task_view(self, status: Any) -> Task:
        known = self._runtime().tasks.get(status.task_id)
        if known is not None:
            return known.follow(status)
        workflow = self.get_workflow_by_name(status.workflow_name or "")
        if workflow is None:
            nodes = [s.node for s in status.steps if s.node]  # the seed's steps are on nodes: no wait
            steps = [self.get_node_by_id(n) or BaseNode(n, n) for n in nodes]
            workflow = Workflow.of(-1, status.workflow_name or "", steps)
        return Task(workflow, status.args).follow(status)

    # --- the durable lab ---------------------------------------------------------------------------

    def _serving(self) -> bool:
        return self.lab_config is not None and self._seed is not None and self._seed.loop is not None

    def attach(self, seed: runtime.SeedRuntime) -> None:
        """The runtime of the scheduler that serves this orchestrator's routes."""
        self._seed = seed

    def _runtime(self) -> runtime.SeedRuntime:
        return self._seed or runtime.current()

    def _call(self, operation: Callable[[Any], Any]) -> Any:
        seed = self._runtime()
        return seed.call(lambda: operation(seed.operations))

    def _durable(self, operation: Callable[[Any], Any], fallback: T) -> Any:
        """The durable answer, or `fallback` before the scheduler serves (or on its event loop)."""
        if not self._serving():
            return fallback
        try:
            return self._call(operation)
        except RuntimeError:  # called on the event loop: the seed's objects answer from their own state
            return fallback
