"""Wire models of tasks and steps: what a TaskWorkflow takes, keeps, answers and returns.

Every field has a default or is required from the start, so fields can be added without breaking the
histories of running tasks. Times are given by the caller (the workflow clock), never taken here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from .config import LabConfig, NodeConfig
from .errors import UnknownWorkflowError
from .models import NextExecution, NodeRef, RetryConfig
from .states import TaskState

MAX_WORKFLOW_ID_CHARS = 200


class StepSpec(BaseModel):
    """One step, resolved against the configuration when the task starts (its snapshot)."""

    index: int
    node: NodeRef
    args: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = None
    heartbeat_timeout_s: float = 30.0
    retry: RetryConfig = Field(default_factory=RetryConfig)


class TaskSpec(BaseModel):
    """The input of a TaskWorkflow: a snapshot of its lab workflow, its arguments and its priority."""

    workflow_name: str
    steps: list[StepSpec]
    args: dict[str, Any] = Field(default_factory=dict)
    priority: int = 0


class StepOutcome(StrEnum):
    PENDING = "PENDING"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    LOST = "LOST"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"


class StepRecord(BaseModel):
    """What happened to one step, kept in the task's state and shown by its status."""

    index: int
    node: str
    outcome: StepOutcome = StepOutcome.PENDING
    attempts: int = 0
    runs: int = 0
    requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    waited_s: float | None = None
    status: int | None = None
    message: str | None = None
    endpoint: str | None = None
    output: dict[str, Any] = Field(default_factory=dict)
    logs: list[str] = Field(default_factory=list)


class TaskStatus(BaseModel):
    """The whole state of a task: the TaskWorkflow's one model, and the answer of its status query."""

    task_id: str
    workflow_name: str
    state: TaskState = TaskState.PENDING
    priority: int = 0
    args: dict[str, Any] = Field(default_factory=dict)
    current_step: int | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    reason: str | None = None
    pause_requested: bool = False
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def current_node(self) -> str | None:
        if self.current_step is None or self.current_step >= len(self.steps):
            return None
        return self.steps[self.current_step].node


class TaskResult(BaseModel):
    """The result of a finished task: the output of each step, in order (skipped steps give {})."""

    task_id: str
    state: TaskState
    outputs: list[dict[str, Any]] = Field(default_factory=list)


class ContinueRequest(BaseModel):
    """An operator's continue: after a failed step, run it again (`retry`) or move on (`next`)."""

    mode: Literal["retry", "next"] = "retry"
    note: str | None = None


class CommandRequest(BaseModel):
    """An operator's pause or cancel, with who asked and why (kept in the task's history)."""

    reason: str | None = None
    by: str | None = None


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


class StepReport(BaseModel):
    """What the step activity returns, or carries in its error's details when the step failed."""

    status: int = 0
    message: str | None = None
    endpoint: str | None = None
    output: dict[str, Any] = Field(default_factory=dict)
    logs: list[str] = Field(default_factory=list)
    attempt: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None
    waited_s: float = 0.0
    next_execution: NextExecution = NextExecution.NEXT


def make_task_spec(
    lab: LabConfig, workflow_name: str, args: dict[str, Any] | None = None, priority: int = 0
) -> TaskSpec:
    """Resolve a lab workflow into the snapshot a task carries, so a reload never disturbs it."""
    if not lab.has_workflow(workflow_name):
        known = ", ".join(w.name for w in lab.workflows) or "none"
        raise UnknownWorkflowError(f"unknown workflow {workflow_name!r}; known workflows: {known}")
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
                retry=step.retry or node.retry,
            )
        )
    return TaskSpec(workflow_name=workflow_name, steps=steps, args=dict(args or {}), priority=priority)


def node_ref(node: NodeConfig) -> NodeRef:
    return NodeRef(id=node.id, name=node.name, type=node.type, properties=dict(node.properties))


def step_args(spec: TaskSpec, index: int, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """A step's arguments: the task's, then the step's own, then the outputs of the steps before it."""
    args = {**spec.args, **spec.steps[index].args}
    if index:
        args["previous_outputs"] = list(outputs[:index])
    return args
