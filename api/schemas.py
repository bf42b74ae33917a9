"""The API's request and response models (`<Thing>Create` / `<Thing>Public`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..engine.config import StepConfig
from ..engine.ledger import Holder, NodeStats
from ..engine.states import NodeState, TaskState
from ..engine.task_state import Decision, StepRecord

TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"


class TaskCreate(BaseModel):
    workflow_name: str = Field(min_length=1, max_length=200)
    args: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(
        default=None, pattern=TASK_ID_PATTERN, description="your own id, for idempotent starts"
    )
    priority: int = Field(default=0, ge=-1000, le=1000, description="higher runs first on a busy node")


class TaskSummary(BaseModel):
    task_id: str
    workflow_name: str | None = None
    state: TaskState | None = None
    current_node: str | None = None
    temporal_status: str
    started_at: datetime | None = None
    closed_at: datetime | None = None


class TaskPage(BaseModel):
    tasks: list[TaskSummary]
    next_page_token: str | None = None


class StepPublic(StepRecord):
    """A step's record, as the API shows it: a RUNNING step whose node has no online worker, or that
    waits in its node's line, is WAITING (computed when read; the task's own record says RUNNING)."""

    waiting_position: int | None = Field(
        default=None, description="its place in its node's line while WAITING (1: next), when known"
    )


class TaskPublic(TaskSummary):
    priority: int = 0
    args: dict[str, Any] = Field(default_factory=dict)
    current_step: int | None = None
    steps: list[StepPublic] = Field(
        default_factory=list,
        description="the records of up to 200 steps around the current one (all of a small task's); "
        "GET /tasks/{id}/steps pages through every step",
    )
    steps_offset: int = Field(default=0, description="the index of the first step in `steps`")
    decisions: list[Decision] = Field(
        default_factory=list, description="the operators' commands so far: who, when, what, why"
    )
    steps_total: int | None = Field(default=None, description="how many steps the task has")
    reason: str | None = None
    pause_requested: bool = False
    result: list[dict[str, Any]] | None = None
    ui_url: str | None = None
    live: bool = Field(
        description="True when read from the running workflow; False when only from visibility"
    )


class StepPagePublic(BaseModel):
    total: int
    offset: int
    steps: list[StepPublic]
    # Records of this page that are gone: the earlier run of the task that held them is past the
    # retention of Temporal's namespace. One sentence per such run.
    unavailable: list[str] = Field(default_factory=list)


class ContinueBody(BaseModel):
    mode: Literal["retry", "next"] = "retry"
    step: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the step this continue is about, by its id or number: needed when several steps "
        "failed, or to end one of several running waits (mode next)",
    )
    reason: str | None = Field(default=None, max_length=1000, description="why: kept in the task's decisions")


class CancelBody(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)


class WorkflowPublic(BaseModel):
    name: str
    description: str | None = None
    steps: list[StepConfig]


class NodePublic(BaseModel):
    id: str
    name: str
    type: str
    worker: str | None = Field(default=None, description="the worker (PC) that hosts it, per nodes.json")
    online: bool = Field(default=False, description="a live worker hosts it (and has not stopped since)")
    worker_host: str | None = Field(default=None, description="the host of the worker that last hosted it")
    offline_since: datetime | None = Field(
        default=None, description="when its worker stopped (cleanly) or was last seen (killed), if known"
    )
    state: NodeState | None = Field(
        default=None, description="the ledger's state; OFFLINE for an idle node no online worker hosts"
    )
    holder: Holder | None = Field(default=None, description="the first of `holders` (kept for older clients)")
    holders: list[Holder] = Field(
        default_factory=list,
        description="every step holding it now, up to its capacity; `hold`: kept for a step that runs "
        "its driver on another node (the step's `holds`)",
    )
    capacity: int = Field(default=1, description="how many steps may hold it at once (nodes.json)")
    reason: str | None = None
    reachable: bool = Field(
        default=True,
        description="its driver's is_reachable() said the device answers, at its worker's last probe "
        "(every 10 s); a step on a node that does not answer fails without touching it",
    )
    unreachable_since: datetime | None = None
    waiting_tasks: list[str] = Field(default_factory=list)
    stats: NodeStats | None = None
    restarts: int = 0
    hosted: bool = Field(description="the same as `online` (kept for older clients)")


class HealthPublic(BaseModel):
    api: Literal["ok"] = "ok"
    temporal: bool
    temporal_address: str
    workflow_worker: bool = Field(description="a live worker polls the workflow task queue")
    nodes: dict[str, bool] = Field(description="node id: a live worker hosts it")
    workers: dict[str, bool] = Field(
        default_factory=dict,
        description="each worker (PC) of nodes.json: online; a one-PC lab's unnamed worker is '(unnamed)'",
    )
    detail: str | None = Field(default=None, description="why Temporal is unreachable")


class WorkerPublic(BaseModel):
    """A worker of the lab: one per PC named in nodes.json (or a one-PC lab's unnamed worker), and one
    per other host running the workflows."""

    name: str | None = Field(
        description="its `--name` (null: a one-PC lab's worker, or a workflows-only one)"
    )
    host: str | None = Field(default=None, description="the host it runs on, as its ledgers recorded it")
    identity: str | None = Field(default=None, description="its Temporal worker identity (pid@host/...)")
    nodes: list[str] = Field(default_factory=list, description="the nodes it hosts, per nodes.json")
    online: bool = Field(description="a live poller on its nodes' queues, and no clean stop since")
    last_seen: datetime | None = Field(
        default=None, description="its newest poll, else when it stopped cleanly"
    )
    offline_since: datetime | None = Field(default=None, description="when it went offline, if known")
    runs_workflows: bool = Field(default=False, description="it polls the workflow task queue")


class LabCommandPublic(BaseModel):
    done: list[str] = Field(default_factory=list)
    refused: dict[str, str] = Field(default_factory=dict)


class ConfigPublic(BaseModel):
    nodes: list[str]
    workflows: list[str]
    nodes_file: str
    workflows_file: str


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["viewer", "operator", "admin"] = "viewer"


class TokenPublic(BaseModel):
    token: str
    name: str
    role: str
    expires_in_s: float
