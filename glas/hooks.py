"""A GLAS project's own Task class around each step: the seed ran a task's `_pre_step_execution` and
`_post_step_execution` around each of its steps. Here they run in the node's thread, in the process
that drives the node, on the Task object the project's `add_task` made, or, after a restart, on one made
again from the class the task recorded (TaskSpec.hooks)."""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol

from ..engine.models import StepResult
from ..engine.nodes import StepObserver
from ..engine.tasks import StepRequest
from .runtime import SeedRuntime
from .task import Task, as_uuid

log = logging.getLogger("task_scheduler.app.Orchestrator")


class Lab(Protocol):
    """What of an orchestrator the hooks use (glas/orchestrator.py's BaseOrchestrator)."""

    def get_node_by_id(self, node_id: str) -> Any | None: ...

    def get_workflow_by_name(self, name: str) -> Any | None: ...


def task_hooks(orchestrator: Lab, seed: SeedRuntime, request: StepRequest) -> StepObserver | None:
    task = seed.tasks.get(request.task_id) or _made_again(orchestrator, seed, request)
    if task is None:
        return None
    src = orchestrator.get_node_by_id(request.src.id) if request.src else None
    dst = orchestrator.get_node_by_id(request.dst.id) if request.dst else None
    node = orchestrator.get_node_by_id(request.step.runs_on.id)
    return _TaskHooks(task, request.step.index, node, src, dst)


def _made_again(orchestrator: Lab, seed: SeedRuntime, request: StepRequest) -> Task | None:
    module, _, name = (request.hooks or "").partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
        args = {k: v for k, v in request.args.items() if k != "previous_output"}
        task: Task = cls(orchestrator.get_workflow_by_name(request.workflow_name), args)
    except Exception:  # the lab's code: its hooks are skipped, the step runs
        log.exception("task %s: its class %s could not be made again", request.task_id, request.hooks)
        return None
    task._uuid = as_uuid(request.task_id)
    seed.remember(request.task_id, task)
    return task


class _TaskHooks:
    def __init__(self, task: Task, index: int, node: Any, src: Any, dst: Any) -> None:
        self.task, self.index, self.node, self.src, self.dst = task, index, node, src, dst

    def before_step(self) -> None:
        self.task._current_step = self.index
        self.task._pre_step_execution(self.node, self.src, self.dst)

    def after_step(self, result: StepResult) -> None:
        self.task._post_step_execution(result.status, result.message, self.node, self.src, self.dst)
