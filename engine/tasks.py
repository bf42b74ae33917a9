"""What a task is made of: the snapshot of its lab workflow that a TaskWorkflow takes (TaskSpec, made
from the configuration by `make_task_spec`), and what it asks of a step's activity (StepRequest). What
it keeps and answers is in task_state.py.

Every field has a default or is required from the start, so fields can be added without breaking the
histories of running tasks. Times are given by the caller (the workflow clock), never taken here.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from .config import LabConfig, NodeConfig
from .errors import InvalidRequestError, UnknownWorkflowError
from .models import NodeRef, RetryConfig
from .reminders import NotifyPolicy, notify_policy
from .task_state import TaskMemory

# A task's args travel in its history with every step. Temporal refuses a payload over 2 MiB (and ends a
# task whose step input grows past it: mid-run), and the data converter fails at a few hundred levels.
MAX_ARGS_BYTES = 256 * 1024
MAX_ARGS_DEPTH = 32


class StepSpec(BaseModel):
    """One step, resolved against the configuration when the task starts (its snapshot)."""

    index: int
    node: NodeRef
    args: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = None
    heartbeat_timeout_s: float = 30.0
    abort_grace_s: float = 60.0
    max_output_bytes: int = 256 * 1024
    retry: RetryConfig = Field(default_factory=RetryConfig)


class TaskSpec(BaseModel):
    """The input of a TaskWorkflow: a snapshot of its lab workflow, its arguments and its priority."""

    workflow_name: str
    steps: list[StepSpec]
    args: dict[str, Any] = Field(default_factory=dict)
    priority: int = 0
    # What the task tells the lab's people (notifications.json when it started); None: nothing.
    notify: NotifyPolicy | None = None
    # `module:Class` of the seed's Task subclass a GLAS project's `add_task` made for this task: its step
    # hooks run around each step, in the worker that hosts the step's node. None: no hooks.
    hooks: str | None = None
    # Set only by the task itself when it continues as new: its whole state, handed to the next run.
    carried: TaskMemory | None = None


class StepRequest(BaseModel):
    """The input of the step activity."""

    task_id: str
    step: StepSpec
    run: int = 1
    priority: int = 0
    requested_at: datetime
    src: NodeRef | None = None
    dst: NodeRef | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    lost_run: int | None = None  # see BeginUse.lost_run
    workflow_name: str = ""  # the task's lab workflow, given to the driver's hooks
    hooks: str | None = None  # see TaskSpec.hooks
    # The task reads the report of a run cancelled while its driver ran (StepCancelled: since when it
    # ran, for the timeline); a task of older code asked without it and takes a plain cancel.
    report_cancel: bool = False


def make_task_spec(
    lab: LabConfig, workflow_name: str, args: dict[str, Any] | None = None, priority: int = 0
) -> TaskSpec:
    """Resolve a lab workflow into the snapshot a task carries, so a reload never disturbs it."""
    if not lab.has_workflow(workflow_name):
        known = ", ".join(w.name for w in lab.workflows) or "none"
        raise UnknownWorkflowError(f"unknown workflow {workflow_name!r}; known workflows: {known}")
    check_task_args(args or {})
    steps = []
    for index, step in enumerate(lab.workflow(workflow_name).steps):
        node = lab.node(step.node)
        steps.append(
            StepSpec(
                index=index,
                node=node_ref(node),
                args=dict(step.args),
                timeout_s=step.timeout_s or node.timeout_s,
                heartbeat_timeout_s=node.heartbeat_timeout_s,
                abort_grace_s=node.abort_grace_s,
                max_output_bytes=node.max_output_bytes,
                retry=step.retry or node.retry,
            )
        )
    return TaskSpec(
        workflow_name=workflow_name,
        steps=steps,
        args=dict(args or {}),
        priority=priority,
        notify=notify_policy(lab.notifications),
    )


def check_task_args(args: dict[str, Any]) -> None:
    """Refuse, before anything runs, args that Temporal or the data converter would refuse later."""
    depth = _nesting(args)
    if depth > MAX_ARGS_DEPTH:
        raise InvalidRequestError(f"args are nested more than {MAX_ARGS_DEPTH} levels deep")
    size = len(json.dumps(args, default=str).encode())
    if size > MAX_ARGS_BYTES:
        raise InvalidRequestError(f"args take {size} bytes as JSON; at most {MAX_ARGS_BYTES} are accepted")


def _nesting(value: Any) -> int:
    """How deeply dicts and lists nest in `value` (counting stops past MAX_ARGS_DEPTH); no recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_ARGS_DEPTH:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list | tuple):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest


def node_ref(node: NodeConfig) -> NodeRef:
    return NodeRef(id=node.id, name=node.name, type=node.type, properties=dict(node.properties))


def step_args(spec: TaskSpec, index: int, previous_output: dict[str, Any] | None) -> dict[str, Any]:
    """A step's arguments: the task's, then the step's own, then the output of the step before it if
    it returned one (one step's, bounded: the input does not grow with the number of steps). A driver
    written for the seed returns none, so it gets the task's arguments exactly."""
    args = {**spec.args, **spec.steps[index].args}
    if index and previous_output:
        args["previous_output"] = dict(previous_output)
    return args


TaskSpec.model_rebuild()
