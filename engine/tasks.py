"""Wire models of tasks and steps: what a TaskWorkflow takes, keeps, answers and returns.

Every field has a default or is required from the start, so fields can be added without breaking the
histories of running tasks. Times are given by the caller (the workflow clock), never taken here.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from .config import LabConfig, NodeConfig
from .errors import InvalidRequestError, UnknownWorkflowError
from .models import NextExecution, NodeRef, RetryConfig
from .reminders import NotifyPolicy, notify_policy
from .states import TaskState

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


class StepOutcome(StrEnum):
    PENDING = "PENDING"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    LOST = "LOST"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"


class EarlierRun(BaseModel):
    """A run of a step that its task gave up as cut off: its worker stopped heartbeating while the
    driver ran. The node's ledger accounts for it later (its late end, or its worker replaced)."""

    run: int
    attempt: int = 1
    worker: str | None = None
    started_at: datetime | None = None
    lost_at: datetime | None = None
    accounted: bool = False
    late_outcome: str | None = None  # SUCCEEDED, FAILED or UNKNOWN, once accounted for
    late_status: int | None = None
    late_message: str | None = None
    late_ended_at: datetime | None = None


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
    earlier_runs: list[EarlierRun] = Field(default_factory=list)

    def unaccounted_run(self) -> EarlierRun | None:
        """A run given up as cut off whose end is not known yet: its driver may still be running."""
        return next((r for r in self.earlier_runs if not r.accounted), None)


class StepArchive(BaseModel):
    """Step records a task left in the state of one of its earlier Temporal runs (continue-as-new):
    that run, queried by its run id, still answers them, outputs and logs included."""

    first: int
    last: int
    run_id: str


class TaskStatus(BaseModel):
    """The whole state of a task: the TaskWorkflow's one model, and the answer of its status query.

    `steps` holds the records from `steps_offset` on, as far as the task got: the steps before are
    archived in earlier runs, the steps after are still PENDING (the status query fills those in), so
    the state stays small for a task of thousands of steps."""

    task_id: str
    workflow_name: str
    state: TaskState = TaskState.PENDING
    priority: int = 0
    args: dict[str, Any] = Field(default_factory=dict)
    current_step: int | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    steps_offset: int = 0
    steps_total: int = 0
    reason: str | None = None
    pause_requested: bool = False
    created_at: datetime | None = None
    finished_at: datetime | None = None
    decisions: list[Decision] = Field(default_factory=list)  # the last DECISIONS_KEPT

    def record(self, index: int) -> StepRecord | None:
        """The record of step `index`, if this state holds it."""
        position = index - self.steps_offset
        return self.steps[position] if 0 <= position < len(self.steps) else None

    @property
    def current_node(self) -> str | None:
        record = None if self.current_step is None else self.record(self.current_step)
        return record.node if record else None


class TaskMemory(BaseModel):
    """A TaskWorkflow's whole state in one model, handed whole to the next run at continue-as-new."""

    status: TaskStatus
    next_step: int = 0
    # An operator's continue after a failure: kept until it has been carried out (the task has left
    # ERROR), so a second continue meanwhile is refused instead of deciding the next failure.
    decision: ContinueRequest | None = None
    resume: bool = False  # an operator's continue of a paused task, not yet honoured
    # Step index -> the first run lost while its heartbeat said "waiting": its rerun asks the ledger
    # whether that run used the node after all (BeginUse.lost_run).
    lost_runs: dict[int, int] = Field(default_factory=dict)
    temporal_runs: int = 1  # how many Temporal runs (continue-as-new) this task has had
    stops: int = 0  # how many times it stopped for an operator (each stop's notifications have their key)
    archives: list[StepArchive] = Field(default_factory=list)


class CommandAck(BaseModel):
    """What an operator's command answers: small, since every answer is written to the history."""

    task_id: str
    state: TaskState
    pause_requested: bool = False


class StepPage(BaseModel):
    """A query for some step records of a task (a task may have thousands)."""

    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)


class StepRecords(BaseModel):
    total: int
    offset: int
    steps: list[StepRecord]
    # Where the records this run no longer holds are: the API asks those runs for them.
    archives: list[StepArchive] = Field(default_factory=list)
    # Archived runs asked for this page that Temporal no longer keeps (past its namespace's retention):
    # their records are gone; filled in by its reader (readers/records.py), never by the workflow.
    unavailable: list[StepArchive] = Field(default_factory=list)


class TaskResult(BaseModel):
    """The result of a finished task: the output of each step, in order (skipped steps give {}).

    Bounded, as every Temporal payload must be: past RESULT_OUTPUTS_BYTES, the oldest outputs are
    left out ({}) and counted in `outputs_omitted`; the step records still hold them."""

    task_id: str
    state: TaskState
    outputs: list[dict[str, Any]] = Field(default_factory=list)
    outputs_omitted: int = 0


RESULT_OUTPUTS_BYTES = 1024 * 1024


def bounded_outputs(outputs: list[dict[str, Any] | None]) -> tuple[list[dict[str, Any]], int]:
    """The newest outputs that fit in RESULT_OUTPUTS_BYTES of JSON, the others {}; and how many were
    left out (a step with no output counts as nothing left out)."""
    kept: list[dict[str, Any]] = []
    budget, omitted = RESULT_OUTPUTS_BYTES, 0
    for output in reversed(outputs):
        size = len(json.dumps(output, default=str)) if output else 0
        if size > budget:
            kept.append({})
            omitted += 1
            continue
        budget -= size
        kept.append(dict(output or {}))
    return kept[::-1], omitted


class ContinueRequest(BaseModel):
    """An operator's continue: after a failed step, run it again (`retry`) or move on (`next`)."""

    mode: Literal["retry", "next"] = "retry"
    note: str | None = None
    by: str | None = None
    reason: str | None = None


class Decision(BaseModel):
    """An operator's command, as the task keeps it: who, when, what, and why if given."""

    at: datetime
    command: Literal["pause", "continue", "cancel"]
    by: str | None = None
    mode: str | None = None  # continue: retry or next
    step: int | None = None  # the step it was about (the current one), from 0
    state: TaskState  # the task's state when it was given
    reason: str | None = None


DECISIONS_KEPT = 100


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
    lost_run: int | None = None  # see BeginUse.lost_run
    workflow_name: str = ""  # the task's lab workflow, given to the driver's hooks
    hooks: str | None = None  # see TaskSpec.hooks


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


TaskStatus.model_rebuild()
