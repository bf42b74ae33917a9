"""The node ledger: who holds a node, since when, and every use counted. Pure logic; the NodeWorkflow
keeps one and changes it only through these methods, so it can be tested without Temporal.

Lab safety: a node serves one step at a time, a node in ERROR serves none until an operator restarts
it, and a use that was cut off (its worker died) is never silently run again on a one-attempt node.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from .errors import TaskSchedulerError
from .states import NodeMachine, NodeState

RECENT_USES_KEPT = 20
# Steps whose use ended, by their latest run: what a step run again after its worker was lost "while
# waiting" is checked against. Only the uses since the loss matter (a few): 500 is ample.
ENDED_RUNS_KEPT = 500


class LedgerRefusal(TaskSchedulerError):
    """The node cannot be used now."""


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


class EndUse(BaseModel):
    key: UseKey
    succeeded: bool
    final: bool = True
    duration_s: float = 0.0
    message: str | None = None


class BeginUse(BaseModel):
    key: UseKey
    waited_s: float = 0.0
    max_attempts: int = 1
    close: EndUse | None = None
    # The first run of this step that was lost while its last heartbeat said "waiting": that heartbeat
    # may be stale (the driver can start, even end, before "running" reaches the server), so a use of
    # that run (or a later one) that ended here means the step ran and the task never heard back.
    lost_run: int | None = None


class BeginVerdict(StrEnum):
    GRANTED = "GRANTED"
    LOST_PREVIOUS = "LOST_PREVIOUS"
    RAN_BEFORE = "RAN_BEFORE"  # the lost run used the node to its end: not granted, an operator decides


class Holder(BaseModel):
    key: UseKey
    since: datetime
    waited_s: float = 0.0


class NodeStats(BaseModel):
    calls: int = 0
    successes: int = 0
    failures: int = 0
    lost: int = 0
    total_run_s: float = 0.0
    min_run_s: float | None = None
    max_run_s: float | None = None
    total_wait_s: float = 0.0
    max_wait_s: float = 0.0

    @property
    def mean_run_s(self) -> float | None:
        return self.total_run_s / self.calls if self.calls else None

    def add(self, end: EndUse, waited_s: float) -> None:
        self.calls += 1
        if end.succeeded:
            self.successes += 1
        else:
            self.failures += 1
        self.total_run_s += end.duration_s
        # `is None`, not `or`: a 0.0 s use (a no-op node) is a real minimum.
        self.min_run_s = end.duration_s if self.min_run_s is None else min(self.min_run_s, end.duration_s)
        self.max_run_s = max(self.max_run_s or 0.0, end.duration_s)
        self.total_wait_s += waited_s
        self.max_wait_s = max(self.max_wait_s, waited_s)


class UseSummary(BaseModel):
    key: UseKey
    began: datetime
    ended: datetime
    outcome: str


class LedgerState(BaseModel):
    """Everything a NodeWorkflow knows, carried whole through continue-as-new."""

    node_id: str
    state: NodeState = NodeState.OFFLINE
    holder: Holder | None = None
    reason: str | None = None
    stats: NodeStats = Field(default_factory=NodeStats)
    restarts: int = 0
    uses_this_run: int = 0
    runs: int = 1
    recent: list[UseSummary] = Field(default_factory=list)
    ended_runs: dict[str, int] = Field(default_factory=dict)  # "task/step" -> latest run whose use ended


class Ledger:
    """Operations on a LedgerState; `check_*` refuse (for update validators), the others apply."""

    def __init__(self, state: LedgerState) -> None:
        self.state = state
        self.machine = NodeMachine(state.state, holder=state.holder)

    def _sync(self) -> None:
        self.machine.set_holder(self.state.holder)
        self.state.state = self.machine.state

    # --- beginning a use ---------------------------------------------------------------------------

    def check_begin(self, request: BeginUse) -> None:
        holder = self.state.holder.key if self.state.holder else None
        if holder == request.key:
            return  # the same begin again (a lost response retried): idempotent
        if self.state.state in (NodeState.ERROR, NodeState.RECOVERY):
            why = f" ({self.state.reason})" if self.state.reason else ""
            raise LedgerRefusal(
                f"node {self.state.node_id} is {self.state.state.value}{why}: waiting for a restart"
            )
        if holder is None or holder.same_step(request.key):
            return
        if request.close is not None and request.close.key == holder:
            return
        raise LedgerRefusal(f"node {self.state.node_id} is in use by {holder}")

    def begin(self, request: BeginUse, now: datetime) -> BeginVerdict:
        self.check_begin(request)
        current = self.state.holder
        if current is not None and current.key == request.key:
            return BeginVerdict.GRANTED
        if request.close is not None and current is not None and current.key == request.close.key:
            self._close(request.close, now)
            current = None
            if self._ran_before(request):
                self.machine.trigger("release")
                self._sync()
                return BeginVerdict.RAN_BEFORE
        if current is None and self._ran_before(request):
            return BeginVerdict.RAN_BEFORE
        if current is not None and not self._may_take_over(current.key, request):
            self.abandon(current.key, now, f"{current.key} was cut off (its worker was lost)")
            return BeginVerdict.LOST_PREVIOUS
        if current is not None:
            self._record(current, now, "lost")
            self.state.stats.lost += 1
        self._hold(request, now)
        return BeginVerdict.GRANTED

    def _ran_before(self, request: BeginUse) -> bool:
        """The run this one replaces, thought lost before it began, did use the node to its end."""
        ended = self.state.ended_runs.get(step_of(request.key), 0)
        return request.lost_run is not None and ended >= request.lost_run

    def _may_take_over(self, previous: UseKey, request: BeginUse) -> bool:
        """A previous use of the same step never ended: only a retry the node's policy allows may run."""
        return previous.attempt < request.max_attempts and request.key.attempt <= request.max_attempts

    def _hold(self, request: BeginUse, now: datetime) -> None:
        if self.machine.state is NodeState.OFFLINE:
            self.machine.trigger("come_online")
        self.state.holder = None
        self._sync()
        self.machine.trigger("hand_over" if self.machine.state is NodeState.IN_USE else "acquire")
        self.state.holder = Holder(key=request.key, since=now, waited_s=request.waited_s)
        self.state.uses_this_run += 1
        self._sync()

    # --- ending a use ------------------------------------------------------------------------------

    def end(self, request: EndUse, now: datetime) -> bool:
        """Record the end of the holder's use; an end of a use that is not held is ignored (idempotent)."""
        holder = self.state.holder
        if holder is None or holder.key != request.key:
            return False
        self._close(request, now)
        self.machine.trigger("release")
        if not request.succeeded and request.final:
            self.machine.trigger("fail")
            self.state.reason = f"{request.key} failed: {request.message or 'no message'}"
        self._sync()
        return True

    def _close(self, request: EndUse, now: datetime) -> None:
        holder = self.state.holder
        assert holder is not None
        self.state.stats.add(request, holder.waited_s)
        self._record(holder, now, "succeeded" if request.succeeded else "failed")
        self.state.holder = None

    def _record(self, holder: Holder, now: datetime, outcome: str) -> None:
        summary = UseSummary(key=holder.key, began=holder.since, ended=now, outcome=outcome)
        self.state.recent = [*self.state.recent, summary][-RECENT_USES_KEPT:]
        step, runs = step_of(holder.key), self.state.ended_runs
        runs[step] = max(runs.pop(step, 0), holder.key.run)  # re-inserted: the newest last
        for oldest in list(runs)[: max(0, len(runs) - ENDED_RUNS_KEPT)]:
            del runs[oldest]

    def abandon(self, key: UseKey, now: datetime, reason: str) -> bool:
        """The holder will never end its use (worker lost, task terminated): the device may have stopped
        mid-action, so the node goes to ERROR and waits for an operator's restart."""
        holder = self.state.holder
        if holder is None or not holder.key.same_step(key) or holder.key.run > key.run:
            return False
        self._record(holder, now, "lost")
        self.state.stats.lost += 1
        self.state.holder = None
        self._sync()
        self.machine.trigger("fail")
        self.state.reason = reason
        self._sync()
        return True

    # --- the node's life ---------------------------------------------------------------------------

    def come_online(self) -> None:
        if self.machine.can("come_online"):
            self.machine.trigger("come_online")
            self._sync()

    def go_offline(self) -> None:
        if self.machine.can("go_offline"):
            self.machine.trigger("go_offline")
            self._sync()

    def check_restart(self) -> None:
        if not self.machine.can("restart"):
            held = f" by {self.state.holder.key}" if self.state.holder else ""
            raise LedgerRefusal(
                f"cannot restart node {self.state.node_id}: it is {self.state.state.value}{held}"
            )

    def start_restart(self) -> None:
        self.check_restart()
        self.machine.trigger("restart")
        self._sync()

    def finish_restart(self, ok: bool, message: str | None) -> None:
        self.state.restarts += 1
        if ok:
            self.machine.trigger("recovered")
            self.state.reason = None
        else:
            self.machine.trigger("fail")
            self.state.reason = f"restart failed: {message or 'no message'}"
        self._sync()


def step_of(key: UseKey) -> str:
    """The step a use belongs to, whatever its run or attempt: "task id/step index"."""
    return f"{key.task_id}/{key.step_index}"


class NodeCommand(BaseModel):
    """The input of the node activities (restart, probe, shutdown) and of restart requests."""

    node_id: str
    only_if_error: bool = False
    by: str | None = None


class NodeCommandResult(BaseModel):
    ok: bool
    message: str | None = None


class HolderCheck(BaseModel):
    task_id: str


class HolderAnswer(BaseModel):
    running: bool
    status: str
