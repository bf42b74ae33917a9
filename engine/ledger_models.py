"""The node ledger's wire models: what a NodeWorkflow keeps, takes and answers (see engine/ledger.py).

Every field has a default or is required from the start, so fields can be added without breaking the
histories of running ledgers.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from .errors import TaskSchedulerError
from .states import NodeState
from .usage import UsageBuckets

# How long a restarted node is kept for the step its operator runs again: the step's retry is scheduled
# as the restart is asked for, and reaches the node within seconds unless its task was cancelled.
KEPT_FOR_S = 120.0

RECENT_USES_KEPT = 20
# Steps whose use ended, by their latest run: what a step run again after its worker was lost "while
# waiting" is checked against. Only the uses since the loss matter (a few): 500 is ample.
ENDED_RUNS_KEPT = 500


class LedgerRefusal(TaskSchedulerError):
    """The node cannot be used now. `kept_for`: the step the node is kept for (an operator's retry),
    which the hosting worker's gate then lets go first."""

    def __init__(self, message: str | None = None, kept_for: str | None = None) -> None:
        super().__init__(message)
        self.kept_for = kept_for


class UseKey(BaseModel):
    """One use of a node: a run (scheduling) of a task's step, and its Temporal attempt."""

    task_id: str
    step_index: int
    run: int = 1
    attempt: int = 1

    def same_step(self, other: UseKey) -> bool:
        return (self.task_id, self.step_index) == (other.task_id, other.step_index)

    def __str__(self) -> str:
        return f"task {self.task_id} step {self.step_index + 1} (run {self.run}, attempt {self.attempt})"


class WorkerInfo(BaseModel):
    """The worker process that hosts a node: its `--name` (the PC), its identity and its host."""

    name: str | None = None
    identity: str = ""
    host: str = ""
    # What the worker built the node's driver from (engine.config.driver_digest), to tell a reload of
    # the configuration that the worker runs other driver settings.
    config_digest: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.host or self.identity or "its worker"


class EndUse(BaseModel):
    key: UseKey
    succeeded: bool
    final: bool = True
    duration_s: float = 0.0
    message: str | None = None
    status: int | None = None
    ended_at: datetime | None = None  # when the driver returned, by the worker's clock
    # The driver did not stop within its abort grace: the use is not over, the device may still act.
    # The ledger keeps the use open and the node closed in ERROR until the real end arrives (a late
    # end, sent when the driver returns) or its worker process is replaced; then a restart reopens it.
    driver_running: bool = False
    # Ended by an operator's cancel of its task while the driver ran (it was asked to abort): counted
    # apart from the failures, since it says nothing of the device.
    cancelled: bool = False
    # The end of a hold (BeginUse.hold), never of the use its step began with the same key.
    hold: bool = False


class BeginUse(BaseModel):
    key: UseKey
    waited_s: float = 0.0
    max_attempts: int = 1
    # How many steps may hold the node at once (its `capacity` in nodes.json, as the hosting worker
    # read it): the ledger admits a begin while fewer hold it.
    capacity: int = 1
    # A hold: the step runs its driver on another node and keeps this one with it (its `holds`), or
    # takes its own node early, in the order that keeps two tasks from waiting on each other. No driver
    # runs here; the step's own begin on its node takes the hold over.
    hold: bool = False
    close: EndUse | None = None
    # The first run of this step that was lost while its last heartbeat said "waiting": that heartbeat
    # may be stale (the driver can start, even end, before "running" reaches the server), so a use of
    # that run (or a later one) that ended here means the step ran and the task never heard back.
    lost_run: int | None = None
    worker: WorkerInfo | None = None  # the worker process that will run the driver


class BeginVerdict(StrEnum):
    GRANTED = "GRANTED"
    LOST_PREVIOUS = "LOST_PREVIOUS"
    RAN_BEFORE = "RAN_BEFORE"  # the lost run used the node to its end: not granted, an operator decides


class Holder(BaseModel):
    key: UseKey
    since: datetime
    waited_s: float = 0.0
    worker: WorkerInfo | None = None
    hold: bool = False  # held for a step that runs elsewhere, or not yet begun here (BeginUse.hold)


class CutOff(Holder):
    """A use kept open although its step is over for the task: its driver may still be running (its PC
    lost the link, or it did not stop when asked to abort). `reason`: why, when it is not the lost link
    (a driver that did not stop says so in its own words)."""

    reason: str | None = None


class NodeStats(BaseModel):
    """A node's uses over its life: `calls` are the uses that ended (successes + failures + cancelled);
    the run times are those of the uses that ran to their end (a cancelled one was cut short)."""

    calls: int = 0
    successes: int = 0
    failures: int = 0
    cancelled: int = 0
    lost: int = 0
    total_run_s: float = 0.0
    min_run_s: float | None = None
    max_run_s: float | None = None
    total_wait_s: float = 0.0
    max_wait_s: float = 0.0
    # Holds: the node kept for a step that ran its driver on another node (not counted in `calls`).
    holds: int = 0
    total_held_s: float = 0.0

    @property
    def mean_run_s(self) -> float | None:
        ran = self.calls - self.cancelled
        return self.total_run_s / ran if ran else None

    def add(self, end: EndUse, waited_s: float) -> None:
        self.calls += 1
        self.total_wait_s += waited_s
        self.max_wait_s = max(self.max_wait_s, waited_s)
        if end.cancelled and not end.succeeded:
            self.cancelled += 1
            return
        if end.succeeded:
            self.successes += 1
        else:
            self.failures += 1
        self.total_run_s += end.duration_s
        # `is None`, not `or`: a 0.0 s use (a no-op node) is a real minimum.
        self.min_run_s = end.duration_s if self.min_run_s is None else min(self.min_run_s, end.duration_s)
        self.max_run_s = max(self.max_run_s or 0.0, end.duration_s)


class UseSummary(BaseModel):
    key: UseKey
    began: datetime
    ended: datetime
    outcome: str
    status: int | None = None
    message: str | None = None
    late: bool = False  # the end arrived after the task had given the run up as cut off


class RunOutcome(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"  # its worker process was replaced before the run reported its end


class RunAccounted(BaseModel):
    """A run that its task gave up as cut off (its heartbeat was lost while the driver ran), accounted
    for: its late end arrived, or its worker process was replaced. The ledger tells the task."""

    key: UseKey
    outcome: RunOutcome
    node_id: str = ""
    worker: str | None = None
    began: datetime | None = None
    ended: datetime | None = None
    status: int | None = None
    message: str | None = None


class LedgerState(BaseModel):
    """Everything a NodeWorkflow knows, carried whole through continue-as-new."""

    node_id: str
    state: NodeState = NodeState.OFFLINE
    holder: Holder | None = None  # the first of the steps holding the node; `others` are the rest
    others: list[Holder] = Field(default_factory=list)  # a node of capacity > 1: the other holders
    reason: str | None = None
    stats: NodeStats = Field(default_factory=NodeStats)
    restarts: int = 0
    uses_this_run: int = 0
    runs: int = 1
    recent: list[UseSummary] = Field(default_factory=list)
    ended_runs: dict[str, int] = Field(default_factory=dict)  # "task/step" -> latest run whose use ended
    # Uses given up as cut off whose driver may still be running on a PC the server cannot reach: the
    # node stays closed (no restart, no other step) until each is accounted for.
    cut_off: list[CutOff] = Field(default_factory=list)
    to_report: list[RunAccounted] = Field(default_factory=list)  # accountings not yet sent to their task
    # "task/step" -> the latest run its task gave up while it waited (its heartbeat stopped): a stale
    # waiter of that run, still alive in a worker that was cut off, must never begin.
    withdrawn: dict[str, int] = Field(default_factory=dict)
    worker: WorkerInfo | None = None  # the worker that last brought the node online
    online_since: datetime | None = None
    errors: int = 0  # how many times the node went to ERROR
    errors_told: int = 0  # of those, how many the lab's people were told of
    offline_since: datetime | None = None  # set by a clean stop of its worker
    usage: UsageBuckets = Field(default_factory=UsageBuckets)  # windowed figures (engine/usage.py)
    # The device as its driver's `is_reachable()` last answered in the hosting worker.
    reachable: bool = True
    unreachable_since: datetime | None = None
    unreachable_reason: str | None = None
    kept_for: KeptFor | None = None  # restarted for an operator's retry: that step goes first
    # The step whose failure put the node in ERROR: its task waits for an operator, whose continue
    # restarts the node. None when the ERROR has another cause (a restart failed, a holder vanished).
    failed_step: UseKey | None = None

    @property
    def holders(self) -> list[Holder]:
        """Every step holding the node, the first first (more than one only with capacity > 1)."""
        return [self.holder, *self.others] if self.holder is not None else []


class NodeCommand(BaseModel):
    """The input of the node activities (restart, probe, shutdown) and of restart requests."""

    node_id: str
    only_if_error: bool = False
    by: str | None = None
    worker: WorkerInfo | None = None  # come_online: the worker that now hosts the node
    # A task's restart request after its operator chose to run the failed step again: "task/step"
    # (step_of), for which the restarted node is kept (LedgerState.kept_for).
    retry_of: str | None = None


class KeptFor(BaseModel):
    """The node, restarted for an operator's retry, is kept for that step until it begins (or for
    KEPT_FOR_S at most: its task may have been cancelled meanwhile)."""

    step: str  # "task/step" (step_of)
    since: datetime

    def holds_at(self, now: datetime) -> bool:
        """Whether the node is still kept for the step at `now`."""
        return (now - self.since).total_seconds() <= KEPT_FOR_S


class Reachability(BaseModel):
    """A hosting worker's probe of a node's device changed its answer."""

    node_id: str
    reachable: bool
    reason: str | None = None


class NodeCommandResult(BaseModel):
    ok: bool
    message: str | None = None


class HoldRelease(BaseModel):
    """A task releases the holds of a step's run (its driver ended, or the run was given up)."""

    key: UseKey
    node_id: str = ""


class HolderCheck(BaseModel):
    task_id: str
    holder: Holder | None = None  # the use to check: its task may have recorded that it ended


class HolderAnswer(BaseModel):
    running: bool
    status: str
    # The holder's task recorded the use's run as SUCCEEDED (its end never reached the ledger: the
    # worker stopped right after the step returned): the end to record.
    ended: EndUse | None = None
