"""What a task is made of: the snapshot of its lab workflow that a TaskWorkflow takes (TaskSpec, made
from the configuration by `make_task_spec`), and what it asks of a step's activity (StepRequest). What
it keeps and answers is in task_state.py.

Every field has a default or is required from the start, so fields can be added without breaking the
histories of running tasks. Times are given by the caller (the workflow clock), never taken here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from .config import LabConfig, NodeConfig, StepConfig
from .errors import InvalidRequestError, UnknownWorkflowError
from .models import NodeRef, RetryConfig
from .protocol import Protocol, ProtocolStep, parse_wait_until, step_after, step_name
from .reminders import NotifyPolicy, notify_policy
from .task_state import TaskMemory

# A task's args travel in its history with every step. Temporal refuses a payload over 2 MiB (and ends a
# task whose step input grows past it: mid-run), and the data converter fails at a few hundred levels.
MAX_ARGS_BYTES = 256 * 1024
MAX_ARGS_DEPTH = 32


class StepSpec(BaseModel):
    """One step, resolved against the configuration when the task starts (its snapshot): the node it
    runs on, or a wait (`wait_s`, `wait_until`); its id and the steps it comes after, as written (None:
    its number, and the step before it), so a task started before steps had them reads as the line it
    was."""

    index: int
    node: NodeRef | None = None
    id: str | None = None
    after: list[str] | None = None
    wait_s: float | None = None
    wait_until: str | None = None
    holds: list[str] = Field(default_factory=list)  # nodes kept with `node` while the step runs
    args: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = None
    heartbeat_timeout_s: float = 30.0
    abort_grace_s: float = 60.0
    max_output_bytes: int = 256 * 1024
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @property
    def step_id(self) -> str:
        return step_name(self.index, self.id)

    @property
    def runs_on(self) -> NodeRef:
        """The node a step runs on; a wait runs on none."""
        if self.node is None:
            raise InvalidRequestError(f"step {self.step_id} is a wait: it runs on no node")
        return self.node

    @property
    def node_id(self) -> str | None:
        return self.node.id if self.node is not None else None


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
    # The lab's offset from UTC when the task started: a wait until a time of the day (or an ISO time
    # without a zone) is the lab's local time.
    utc_offset_s: int = 0
    # Set only by the task itself when it continues as new: its whole state, handed to the next run.
    carried: TaskMemory | None = None

    def protocol(self) -> Protocol:
        """The graph of its steps (checked when the configuration was loaded): a task started before
        steps had ids and `after` is the line of its steps."""
        steps, ids = [], [step.step_id for step in self.steps]
        for step in self.steps:
            steps.append(
                ProtocolStep(
                    id=step.step_id,
                    index=step.index,
                    after=step_after(step.index, step.after, ids),
                    node=step.node_id,
                    wait_s=step.wait_s,
                    wait_until=step.wait_until,
                )
            )
        return Protocol(steps=tuple(steps))


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
    # The step took its own node with its holds (in the order of node ids, which keeps two steps from
    # waiting on each other): it begins there without waiting in the node's line.
    held: bool = False


def make_task_spec(
    lab: LabConfig,
    workflow_name: str,
    args: dict[str, Any] | None = None,
    priority: int = 0,
    utc_offset_s: int = 0,
) -> TaskSpec:
    """Resolve a lab workflow into the snapshot a task carries, so a reload never disturbs it;
    `utc_offset_s`: the lab's offset from UTC now (its waits until a time of the day are local)."""
    if not lab.has_workflow(workflow_name):
        known = ", ".join(w.name for w in lab.workflows) or "none"
        raise UnknownWorkflowError(f"unknown workflow {workflow_name!r}; known workflows: {known}")
    check_task_args(args or {})
    steps = [_step_spec(lab, index, step) for index, step in enumerate(lab.workflow(workflow_name).steps)]
    return TaskSpec(
        workflow_name=workflow_name,
        steps=steps,
        args=dict(args or {}),
        priority=priority,
        notify=notify_policy(lab.notifications),
        utc_offset_s=utc_offset_s,
    )


def _step_spec(lab: LabConfig, index: int, step: StepConfig) -> StepSpec:
    after = list(step.after) if step.after is not None else None
    if step.node is None:
        return StepSpec(index=index, id=step.id, after=after, wait_s=step.wait_s, wait_until=step.wait_until)
    node = lab.node(step.node)
    return StepSpec(
        index=index,
        id=step.id,
        after=after,
        node=node_ref(node),
        args=dict(step.args),
        timeout_s=step.timeout_s or node.timeout_s,
        heartbeat_timeout_s=node.heartbeat_timeout_s,
        abort_grace_s=node.abort_grace_s,
        max_output_bytes=node.max_output_bytes,
        retry=step.retry or node.retry,
        holds=list(step.holds or []),
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


def step_args(spec: TaskSpec, index: int, before: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """A step's arguments: the task's, then the step's own, then the output of the step it comes after
    if it returned one (`previous_output`: one step's, bounded, so the input does not grow with the
    number of steps); a step that comes after several gets theirs by step id (`previous_outputs`).
    `before`: the output of each step it comes after, by id. A driver written for the seed returns
    none, so it gets the task's arguments exactly."""
    args = {**spec.args, **spec.steps[index].args}
    given = {step_id: dict(output) for step_id, output in before.items() if output}
    if len(before) == 1 and given:
        args["previous_output"] = next(iter(given.values()))
    elif given:
        args["previous_outputs"] = given
    return args


def wait_end(step: StepSpec, started: datetime, utc_offset_s: int = 0) -> datetime:
    """When a wait that started at `started` (UTC) ends: `wait_s` later, or at `wait_until`: an ISO
    time (without a zone: the lab's local time, `utc_offset_s` from UTC), or the first time that time of
    the day comes in the lab, at `started` or after it."""
    if step.wait_s is not None:
        return started + timedelta(seconds=step.wait_s)
    until = parse_wait_until(step.wait_until or "")
    offset = timedelta(seconds=utc_offset_s)
    if isinstance(until, datetime):
        return until.astimezone(UTC) if until.tzinfo else until.replace(tzinfo=UTC) - offset
    if until is None:
        raise InvalidRequestError(f"step {step.step_id} neither waits seconds nor until a time")
    local = started + offset
    moment = local.replace(hour=until.hour, minute=until.minute, second=until.second, microsecond=0)
    if moment < local:
        moment += timedelta(days=1)
    return moment - offset


TaskSpec.model_rebuild()
