"""The LabWorkflow's state, one model, and its pure rules: which deliveries to make, what to remember of
them, and when a PC's worker counts as offline or back (workflows/lab.py runs them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from .config import LabConfig
from .notifications import (
    Event,
    Notification,
    NotificationsConfig,
    TargetRef,
    targets_for,
    worker_offline_notification,
    worker_online_notification,
)

RECENT = 50  # deliveries kept in the state for the `status` query
FAILURES = 50
KEYS_KEPT = 1000  # notification keys remembered to drop a repeat


class WorkerPlan(BaseModel):
    """One PC's worker as the configuration names it (None: a one-PC lab's unnamed worker)."""

    name: str | None = None
    nodes: list[str]
    offline_after_s: float  # the smallest of its nodes'


class LabPlan(BaseModel):
    """What the LabWorkflow needs of the lab: refreshed by every workflow worker that starts."""

    workers: list[WorkerPlan] = Field(default_factory=list)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)  # masked (public())
    check_every_s: float = 10.0

    @property
    def watches_workers(self) -> bool:
        """Worth checking the workers: someone is told when one goes or comes back."""
        return bool(self.workers) and any(
            targets_for(self.notifications, event) for event in (Event.WORKER_OFFLINE, Event.WORKER_ONLINE)
        )


def lab_plan(lab: LabConfig, check_every_s: float = 10.0) -> LabPlan:
    """The plan of a lab: its workers with their nodes, and its notifications with the URLs masked."""
    groups: dict[str | None, list[str]] = {}
    for node in lab.nodes:
        groups.setdefault(node.worker, []).append(node.id)
    workers = [
        WorkerPlan(name=name, nodes=ids, offline_after_s=min(lab.node(i).offline_after_s for i in ids))
        for name, ids in sorted(groups.items(), key=lambda group: (group[0] is None, group[0] or ""))
    ]
    return LabPlan(workers=workers, notifications=lab.notifications.public(), check_every_s=check_every_s)


class Delivery(BaseModel):
    """One notification to one target (one activity: a target that refuses delays no other)."""

    notification: Notification
    target: TargetRef
    first_at: datetime  # when it was first scheduled: the deadline runs from here across runs

    @property
    def ident(self) -> tuple[str, str]:
        return self.notification.key, self.target.place


class DeliveryResult(BaseModel):
    attempts: int


class DeliveryRecord(BaseModel):
    """How a delivery ended."""

    key: str
    event: Event
    target: str  # masked
    sent: bool
    attempts: int = 0
    first_at: datetime
    ended_at: datetime
    error: str | None = None


class WorkerCheck(BaseModel):
    workers: list[WorkerPlan]


class WorkerSeen(BaseModel):
    """A worker as the check found it: online (a live poller of one of its nodes' queues) or, if not,
    since when (None: never hosted its nodes, as far as the server and the ledgers know)."""

    name: str | None = None
    online: bool
    offline_since: datetime | None = None


class WorkersSeen(BaseModel):
    workers: list[WorkerSeen]


class WorkerWatch(BaseModel):
    """What the LabWorkflow knows of one worker."""

    name: str | None = None
    online: bool | None = None  # None: not checked yet
    offline_since: datetime | None = None
    told_offline: bool = False  # a worker_offline went out; its return sends worker_online
    episodes: int = 0  # how many times it was told offline (the notifications' attempt)


def observe(watch: WorkerWatch, plan: WorkerPlan, seen: WorkerSeen, now: datetime) -> Notification | None:
    """Update a worker's watch with a check's answer; the notification to send, if any: one
    worker_offline once it has been gone longer than `offline_after_s`, one worker_online on its return."""
    if seen.online:
        was_told, since = watch.told_offline, watch.offline_since
        watch.online, watch.offline_since, watch.told_offline = True, None, False
        if not was_told:
            return None
        offline_s = (now - since).total_seconds() if since else 0.0
        return worker_online_notification(plan.name, plan.nodes, offline_s, watch.episodes)
    since = seen.offline_since or watch.offline_since or (now if watch.online else None)
    watch.online, watch.offline_since = False, since
    if since is None or watch.told_offline or (now - since).total_seconds() < plan.offline_after_s:
        return None
    watch.told_offline = True
    watch.episodes += 1
    return worker_offline_notification(plan.name, plan.nodes, since, watch.episodes)


class TaskIntake(BaseModel):
    """Whether the lab takes new tasks (the seed's orchestrator start and stop), and the tasks its last
    stop paused, which the next start resumes (a task an operator paused before stays paused)."""

    accepting: bool = True
    changed_at: datetime | None = None
    by: str | None = None
    paused: list[str] = Field(default_factory=list)

    def change(self, change: IntakeChange, now: datetime) -> IntakeAnswer:
        """Stop or start taking tasks; the intake before, and when this change took effect."""
        before = self.model_copy(deep=True)
        if change.accepting != self.accepting:
            self.accepting, self.changed_at, self.by, self.paused = change.accepting, now, change.by, []
        return IntakeAnswer(before=before, changed_at=self.changed_at)

    def note_paused(self, paused: PausedByStop) -> bool:
        """Keep the tasks a stop paused, for the next start; False if a start came meanwhile (then the
        stop must resume them itself)."""
        if self.accepting or self.changed_at != paused.changed_at:
            return False
        self.paused = sorted({*self.paused, *paused.task_ids})
        return True


class IntakeChange(BaseModel):
    accepting: bool
    by: str | None = None


class IntakeAnswer(BaseModel):
    before: TaskIntake
    changed_at: datetime | None = None


class PausedByStop(BaseModel):
    task_ids: list[str]
    changed_at: datetime | None = None  # the stop's (IntakeAnswer.changed_at)


class LabState(BaseModel):
    """The LabWorkflow's whole state, handed on by continue-as-new."""

    plan: LabPlan = Field(default_factory=LabPlan)
    in_flight: list[Delivery] = Field(default_factory=list)  # scheduled, not ended (restarted by a new run)
    recent: list[DeliveryRecord] = Field(default_factory=list)
    failures: list[DeliveryRecord] = Field(default_factory=list)
    keys: list[str] = Field(default_factory=list)  # the newest KEYS_KEPT notification keys
    watches: dict[str, WorkerWatch] = Field(default_factory=dict)  # by worker label
    sent: int = 0
    failed: int = 0
    dropped_repeats: int = 0
    checks_per_run: int = 300  # a check is ~11 history events: continue-as-new well before 51,200
    delivery_retry_s: float = 5.0  # the first retry of a delivery; then twice as long each, 10 min at most
    delivery_deadline_s: float = 24 * 3600.0  # a delivery is retried this long, then recorded as failed
    runs: int = 0
    intake: TaskIntake = Field(default_factory=TaskIntake)

    def accept(self, notification: Notification) -> bool:
        """Remember the key; False if it was seen already (a repeat is not delivered again)."""
        if notification.key in self.keys:
            self.dropped_repeats += 1
            return False
        self.keys = [*self.keys, notification.key][-KEYS_KEPT:]
        return True

    def ended(self, delivery: Delivery, record: DeliveryRecord) -> None:
        self.in_flight = [d for d in self.in_flight if d.ident != delivery.ident]
        self.recent = [*self.recent, record][-RECENT:]
        if record.sent:
            self.sent += 1
        else:
            self.failed += 1
            self.failures = [*self.failures, record][-FAILURES:]

    def watch(self, plan: WorkerPlan) -> WorkerWatch:
        label = plan.name or ""
        return self.watches.setdefault(label, WorkerWatch(name=plan.name))

    def forget_unplanned(self) -> None:
        """Drop the watches of workers the configuration no longer names."""
        labels = {w.name or "" for w in self.plan.workers}
        self.watches = {label: w for label, w in self.watches.items() if label in labels}


class LabStatus(BaseModel):
    """The `status` query: deliveries under way, recent ones, failures with their last error, and what
    is known of each worker."""

    in_flight: list[Delivery]
    recent: list[DeliveryRecord]
    failures: list[DeliveryRecord]
    workers: list[WorkerWatch]
    sent: int
    failed: int
    dropped_repeats: int
    targets: list[str]  # masked
    runs: int

    @classmethod
    def of(cls, state: LabState) -> LabStatus:
        return cls(
            in_flight=state.in_flight,
            recent=state.recent,
            failures=state.failures,
            workers=list(state.watches.values()),
            sent=state.sent,
            failed=state.failed,
            dropped_repeats=state.dropped_repeats,
            targets=state.plan.notifications.describe(),
            runs=state.runs,
        )
