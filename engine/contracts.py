"""The contracts between the parts of a lab, in one place and free of Temporal: what the workflows,
the activities and their clients call each other, and what a task's history holds.

Every name here is written into histories (an activity's type, an error's type, a signal's name) or
read back from them (a heartbeat's details): changing one breaks the replay of running tasks. Workflows
schedule activities by these names, and activities talk to the ledgers by them, so neither imports the
other; tests/unit/test_contracts.py holds each against its definition.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ValidationError

from .ledger_models import LedgerState, UseKey

# --- task queues and workflow ids -----------------------------------------------------------------

DEFAULT_TASK_QUEUE = "task-scheduler"
NODE_WORKFLOW_PREFIX = "node-"
NODE_QUEUE_PREFIX = "node-"
LAB_WORKFLOW_PREFIX = "lab-"


def node_workflow_id(node_id: str) -> str:
    """The id of a node's ledger (NodeWorkflow)."""
    return f"{NODE_WORKFLOW_PREFIX}{node_id}"


def node_task_queue(node_id: str) -> str:
    """The task queue of a node's activities, polled only by the worker that hosts it."""
    return f"{NODE_QUEUE_PREFIX}{node_id}"


def step_activity_id(step_index: int, node_id: str, run: int) -> str:
    """The id of a step run's activity in its task (each attempt of a run shares it): what the Temporal
    UI shows, and how a worker finds the activity of a use its node's ledger holds."""
    return f"step-{step_index + 1}-{node_id}-run-{run}"


def lab_workflow_id(task_queue: str) -> str:
    """The id of a lab's LabWorkflow (notifications, PC liveness): one per workflow task queue."""
    return f"{LAB_WORKFLOW_PREFIX}{task_queue}"


# --- workflow types, and what others call on them -------------------------------------------------

TASK_WORKFLOW_TYPE = "TaskWorkflow"
NODE_WORKFLOW_TYPE = "NodeWorkflow"
LAB_WORKFLOW_TYPE = "LabWorkflow"

# The ledger's updates and query the step activity and the worker send (NodeWorkflow's methods).
BEGIN_USE = "begin_use"
END_USE = "end_use"
LEDGER_STATUS = "status"
# TaskWorkflow's query of its step records, in pages (readers/records.py).
GET_STEPS = "get_steps"
# NodeWorkflow -> TaskWorkflow: a run the task gave up as cut off is accounted for.
RUN_ACCOUNTED_SIGNAL = "run_accounted"
HOLD_GRANTED_SIGNAL = "hold_granted"  # a hold activity tells its task it has the node

# The LabWorkflow's memo key saying whether the lab takes new tasks (the seed's orchestrator switch).
INTAKE_MEMO = "accepting_tasks"

# --- activity types --------------------------------------------------------------------------------

EXECUTE_STEP = "execute_step"  # on the node's queue: wait for the node, run its driver
RESTART_NODE = "restart_node"
PROBE_NODE = "probe_node"
SHUTDOWN_NODE = "shutdown_node"
CHECK_HOLDER = "check_holder"  # does the task holding a node still run?
HOLD_NODE = "hold_node"  # on the node's queue: take the node for a step of `holds`, keep it until released
RELEASE_HOLD = "release_hold"  # on the node's queue: the hold's task lets go of it; its place goes on now
WITHDRAW_WAITER = "withdraw_waiter"  # on the node's queue: a cancelled task's step leaves its line now
DELIVER_ACTIVITY = "deliver_notification"  # on the workflow queue: the LabWorkflow's
CHECK_WORKERS_ACTIVITY = "check_workers"

# --- error types ------------------------------------------------------------------------------------

STEP_FAILED = "StepFailed"  # the driver reported a failure; its StepReport rides in the details
STEP_CANCELLED = "StepCancelled"  # cancelled while its driver ran; its StepReport rides in the details
WORKER_LOST = "WorkerLost"  # an earlier run of the step began and never ended, or ended unreported
WAITING_INTERRUPTED = "WaitingInterrupted"  # the worker stopped while the step waited for its node
# The step ran in a worker process that is gone (another now hosts its node): failed by that one at once,
# retried as the node's retry allows, else cut off like a run whose heartbeats stopped.
WORKER_REPLACED = "WorkerReplaced"
# The worker hosting a held node stopped while the hold lasted: retried, the hold kept in the ledger.
HOLD_INTERRUPTED = "HoldInterrupted"
LEDGER_REFUSAL = "LedgerRefusal"  # the ledger refused an update (the node is held, in ERROR...)
COMMAND_REFUSED = "CommandRefused"  # a task refused an operator's command in its state
DELIVERY_FAILED = "NotificationNotDelivered"  # a failed send: retried
TARGET_UNKNOWN = "NotificationTargetUnknown"  # the delivering worker has no such target: retried too


# --- models that cross the parts ---------------------------------------------------------------------


class NodeInput(BaseModel):
    """What a NodeWorkflow (a node's ledger) starts with, and hands on when it continues as new."""

    ledger: LedgerState
    # Updates are capped at 2000 per run (server default) and each use costs one or two.
    uses_per_run: int = 500
    holder_check_s: float = 60.0


class WaiterWithdrawal(BaseModel):
    """A task cancelled while its step's run may wait in its node's line (WITHDRAW_WAITER): the worker
    hosting the node has that run heartbeat at once, so the cancel reaches it now."""

    node_id: str
    key: UseKey


WAITING, RUNNING = "waiting", "running"  # a step's phases, as its heartbeats say them
HOLDING = "holding"  # a hold activity's phase once it has its node


class HoldRequest(BaseModel):
    """The input of the hold activity: which step's run takes which node, in its line's order."""

    task_id: str
    step_index: int
    run: int = 1
    node_id: str
    priority: int = 0
    requested_at: datetime
    heartbeat_timeout_s: float = 30.0


class HoldGrant(BaseModel):
    """A hold activity has the node for the step's run: its task may take the next node."""

    step_index: int
    run: int = 1
    node_id: str


class StepBeat(BaseModel):
    """A step's heartbeat: where it is. The task reads the last one when the beats stop: "waiting" (its
    run is asked for again, at no cost), or "running" since `started_at` on `worker` (the driver may be
    acting: the run is held as cut off, and `next` says where an operator's "next" goes, as the node's
    `next_node_execution()` answered before the run). Sent without the fields it does not set."""

    # Plain strings, not enums: a beat of any version must read back (a workflow task that cannot read
    # it would retry for ever; `of` falls back to its phase).
    phase: str = WAITING
    position: int | None = None  # waiting: the place in the node's line (1: next)
    waiting: int | None = None  # waiting: how many steps wait for the node
    reason: str | None = None  # waiting: the ledger's last refusal
    started_at: datetime | None = None  # running: the worker's clock
    worker: str | None = None
    attempt: int | None = None
    next: str | None = None  # "SELF" or "NEXT"
    # When it was sent, by the worker's clock: a run cut off "stopped reporting" at its last beat's time,
    # not when the server noticed (a heartbeat timeout later).
    sent_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.phase == RUNNING

    @classmethod
    def of(cls, details: object) -> StepBeat:
        """The beat in a heartbeat's (or a WorkerLost error's) details: a JSON object, an older one
        lacking fields. Anything else reads as a beat that says nothing but "waiting"."""
        if not isinstance(details, dict):
            return cls()
        try:
            return cls.model_validate(details)
        except ValidationError:  # not written by a step of ours: only its phase and `next` count
            said = details.get("next")
            return cls(phase=str(details.get("phase", WAITING)), next=said if isinstance(said, str) else None)

    def sent(self, at: datetime | None = None) -> dict[str, object]:
        """The beat as a heartbeat's details, stamped with the time it is sent (`at`)."""
        beat = self.model_copy(update={"sent_at": at}) if at is not None else self
        return beat.model_dump(mode="json", exclude_none=True)
