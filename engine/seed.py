"""The seed's (GLAS's) enumerations and wire shapes, as the lab projects and HTTP clients written for it
use them, and how our states map onto them.

Pure: the compatibility layer (`glas/`) builds the seed's objects and routes on it. The values are the
seed's own (its clients store and compare them), not ours.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, Field

from .states import NodeState as OurNodeState
from .states import TaskState as OurTaskState


class NodeState(Enum):
    """A node's state, as the seed's node objects and `BaseNodeModel.status` (by name) say it."""

    AVAILABLE = 1
    IN_USE = 2
    RECOVERY = 3
    OFFLINE = 4
    ERROR = 5


class NodeErrorNextStep(Enum):
    """Where a continue after a failed step resumes: this step again (SELF) or the next (NEXT)."""

    SELF = 0
    NEXT = 1


class TaskState(Enum):
    """A task's state; its value is the seed's `task_state_id` (1 to 5)."""

    PENDING = 1
    ACTIVE = 2
    PAUSED = 3
    FINISHED = 4
    ERROR = 5


class OrchestratorErrorCodes(Enum):
    OK = 1
    CANCELLED = 2
    COULD_NOT_FIND_CONFIGURATION = 3
    COULD_NOT_PARSE_CONFIGURATION = 4
    DATABASE_CONNECTION_REFUSED = 5
    CONTENT_NOT_FOUND = 6
    CONTINUE_TASK_FAILED = 7
    RESTART_NODE_FAILED = 8


class OrchestratorState(Enum):
    STOPPED = 0
    RUNNING = 1
    ERROR = 2


# --- wire shapes (field names exactly the seed's) ------------------------------------------------


class BaseNodeModel(BaseModel):
    id: str
    name: str
    status: str  # a NodeState name
    online: bool
    task_id: str | None = None


class WorkflowModel(BaseModel):
    id: int
    name: str
    source: BaseNodeModel
    destination: BaseNodeModel
    steps: list[BaseNodeModel]


class TaskModel(BaseModel):
    uuid: str
    workflow: WorkflowModel
    current_step: int = -1
    state: str  # a TaskState name
    args: dict[str, Any] | None = None


# A time as the seed's MySQL rows gave it: ISO 8601 without an offset, in the server's local time.
SeedTime = Annotated[
    str, Field(description="ISO 8601 without a UTC offset, in the scheduler's local time (the seed's rows)")
]


class DBTaskModel(BaseModel):
    id: str
    workflow_id: int
    active_step: str | None = None
    task_state_id: int
    args: dict[str, Any] | None = None
    created_at: SeedTime | None = None
    updated_at: SeedTime | None = None


class DBWorkflowModel(BaseModel):
    id: int
    name: str
    source_node_id: str
    destination_node_id: str


class TaskRow(BaseModel):
    """The seed's `GET /task/{id}`: the task's row and its workflow's."""

    task: DBTaskModel
    workflow: DBWorkflowModel


class DBLogsModel(BaseModel):
    id: int
    logger_name: str
    log_level: str
    module: str
    caller: str
    line: int
    message: str
    timestamp: SeedTime


class DBExecutionLogsModel(BaseModel):
    id: int
    task_id: str
    workflow_id: int
    name: str  # the node id for a step's run, "w. acc." for its wait for the node
    start: SeedTime
    end: SeedTime


class PostTask(BaseModel):
    """The body of the seed's `POST /task/`."""

    workflow_name: str
    args: dict[str, Any] | None = None


class LoadedCounts(BaseModel):
    """What the seed's `PATCH /config/reload` answers."""

    loaded_workflows: int = Field(description="how many workflows the lab has now")
    loaded_nodes: int = Field(description="how many nodes the lab has now")


WAIT_ROW = "w. acc."  # the seed's name of a step's wait for its node in the execution logs


# --- our states as the seed's -------------------------------------------------------------------


def seed_task_state(state: OurTaskState, pause_requested: bool = False) -> TaskState:
    """Our task state as the seed's. The seed said PAUSED the moment a pause was asked (the step in
    progress still ran), so a pending pause reads PAUSED. It has no CANCELLED: a cancelled task ended
    without finishing, as a task interrupted by the seed's orchestrator stop did, which it wrote 5 (ERROR)."""
    if state is OurTaskState.ACTIVE and pause_requested:
        return TaskState.PAUSED
    if state is OurTaskState.CANCELLED:
        return TaskState.ERROR
    return TaskState[state.value]


def seed_node_state(state: OurNodeState) -> NodeState:
    return NodeState[state.value]


def seed_time(moment: datetime) -> str:
    """A time as the seed's MySQL rows gave it (SeedTime)."""
    return moment.astimezone().replace(tzinfo=None).isoformat()
