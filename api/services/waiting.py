"""Why an active task's running steps do not run: computed when the task is read (stateless).

The task's own record says RUNNING from the moment its step is scheduled. The step really runs only
once its activity's heartbeat says so; before that it waits in its node's line (the heartbeat gives
its place), or no worker took it at all because none hosting its node is online.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionDescription

from ...engine.config import LabConfig, NodeConfig
from ...engine.contracts import EXECUTE_STEP, StepBeat, step_activity_id
from ...engine.ledger import LedgerState, UseKey, step_of, step_text
from ...engine.states import NodeState, TaskState
from ...engine.task_state import StepOutcome
from ...readers.liveness import LivenessReader, NodeLiveness
from ..schemas import StepPublic, TaskPublic
from .workers import utc_text

DEFAULT_OFFLINE_AFTER_S = NodeConfig.model_fields["offline_after_s"].default


@dataclass(frozen=True)
class PendingStep:
    """The step activity as the server has it: taken by a worker (started) or not, its last heartbeat."""

    started: bool
    heartbeat: StepBeat = field(default_factory=StepBeat)

    @property
    def running(self) -> bool:
        return self.started and self.heartbeat.running

    @property
    def position(self) -> int | None:
        position = self.heartbeat.position
        return position if position is not None and position > 0 else None


async def pending_steps(client: Client, description: WorkflowExecutionDescription) -> dict[str, PendingStep]:
    """The task's step activities the server has pending, by activity id (one per running step)."""
    found = {}
    for activity in description.raw_description.pending_activities:
        if activity.activity_type.name != EXECUTE_STEP:
            continue
        started = activity.state != PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
        details = None
        if activity.heartbeat_details.payloads:
            details = (await client.data_converter.decode(activity.heartbeat_details.payloads))[0]
        found[activity.activity_id] = PendingStep(started, StepBeat.of(details))
    return found


async def explain_wait(
    task: TaskPublic, description: WorkflowExecutionDescription, reader: LivenessReader, lab: LabConfig
) -> None:
    """Mark each running step on a node WAITING (with its place in line) when it waits, and say why on
    the task when no online worker hosts its node. No Temporal call unless a step runs."""
    steps = _running_steps(task)
    if not steps:
        return
    pending = await pending_steps(reader.client, description)
    for step in steps:
        taking = step.holding_text()
        if taking is not None:  # a step with holds, taking its nodes one by one
            step.outcome = StepOutcome.WAITING
            task.reason = task.reason or f"step {step.id} {taking}"
            continue
        found = pending.get(step_activity_id(step.index, step.node or "", step.runs))
        if found is not None:
            await _explain_step(task, step, found, reader, lab)


async def _explain_step(
    task: TaskPublic, step: StepPublic, pending: PendingStep, reader: LivenessReader, lab: LabConfig
) -> None:
    node_id = step.node or ""
    if pending.running:
        # The task's record learns when its step started only at the end: a driver running for hours
        # shows since when from its heartbeat.
        step.started_at = step.started_at or pending.heartbeat.started_at
        return
    node = await reader.node(node_id)
    if node.online:
        if not pending.started:
            return
        line = InLine(task.task_id, step.index, node_id, _retried(task, step))
        why = in_line_reason(line, pending, node.ledger)
        if why is not None:  # in its node's line
            step.outcome, step.waiting_position = StepOutcome.WAITING, pending.position
            task.reason = task.reason or why
        return
    step.outcome = StepOutcome.WAITING
    config = lab.node(node_id) if lab.has_node(node_id) else None
    after_s = config.offline_after_s if config else DEFAULT_OFFLINE_AFTER_S
    who = node.worker_label(config.worker if config else None)
    task.reason = task.reason or offline_reason(node, who, after_s, step.requested_at, datetime.now(UTC))


@dataclass(frozen=True)
class InLine:
    """A task's step in its node's line; `retried`: an operator's continue runs it again (the node is
    restarted for it, then kept for it)."""

    task_id: str
    index: int
    node_id: str
    retried: bool = False

    @property
    def step(self) -> str:
        return step_of(UseKey(task_id=self.task_id, step_index=self.index))


def in_line_reason(
    line: InLine, pending: PendingStep, ledger: LedgerState | None, now: datetime | None = None
) -> str | None:
    """Why a step in its node's line waits. The ledger's word first (the heartbeat's may be 10 s old):
    the node is being restarted, or kept for an operator's retry (this step's, or another's); then the
    ledger's last refusal (the node in ERROR, say: the heartbeat says so), or the step ahead that holds
    the node. None: the ledger names this very step as the holder, so it is not waiting but beginning
    (its heartbeat says "running" a moment later)."""
    node_id = line.node_id
    holder = ledger.holder if ledger else None
    if holder is not None and step_of(holder.key) == line.step:
        return None
    kept = _kept_for(ledger, now or datetime.now(UTC))
    if ledger is not None and ledger.state is NodeState.RECOVERY:
        then = ", then kept for it" if line.retried else ""
        whose = " for this step's retry (the operator's continue)" if line.retried else ""
        return f"waiting for node {node_id}: it is being restarted{whose}{then}"
    if kept == line.step:
        return f"waiting for node {node_id}: it was restarted for this step's retry and is kept for it"
    if kept is not None:
        return (
            f"waiting for node {node_id}: it was restarted for an operator's retry of {step_text(kept)}, "
            "which goes first"
        )
    refusal = pending.heartbeat.reason
    if refusal:
        return f"waiting for node {node_id}: {refusal}"
    place = f"number {pending.position} in its line" if pending.position else "in its line"
    if holder is not None:
        since = utc_text(holder.since)
        return f"waiting for node {node_id} ({place}): it is in use by {holder.key} since {since}"
    return f"waiting for node {node_id} ({place})"


def _kept_for(ledger: LedgerState | None, now: datetime) -> str | None:
    """The step the node is kept for, while the ledger still keeps it (KEPT_FOR_S at most)."""
    kept = ledger.kept_for if ledger else None
    return kept.step if kept is not None and kept.holds_at(now) else None


def _retried(task: TaskPublic, step: StepPublic) -> bool:
    """The task's last command is an operator's continue of this step, stopped in ERROR: it runs again
    (a continue with next runs it again too when its node says SELF)."""
    last = task.decisions[-1] if task.decisions else None
    return bool(
        last and last.command == "continue" and last.state is TaskState.ERROR and last.step == step.index
    )


def _running_steps(task: TaskPublic) -> list[StepPublic]:
    """The steps on a node the task's records say RUNNING (each may wait in its node's line): in an
    ACTIVE task, and in one stopped in ERROR or PAUSED while its other branches still run."""
    return [s for s in task.steps if s.outcome is StepOutcome.RUNNING and s.node is not None]


def offline_reason(
    node: NodeLiveness, who: str | None, after_s: float, requested_at: datetime | None, now: datetime
) -> str:
    """ "waiting for node b1: its worker pc-2 is not online", and once the node has been without a live
    worker for over `after_s`: "node b1: its worker pc-2 has been offline since <time>"."""
    worker = f"its worker {who}" if who else "its worker"
    since = node.offline_since
    if since is not None:
        if (now - since).total_seconds() > after_s:
            return f"node {node.node_id}: {worker} has been offline since {utc_text(since)}"
    elif requested_at is not None and (now - requested_at).total_seconds() > after_s:
        # Never seen, or its last poll has aged out of the server's list (after minutes).
        return (
            f"node {node.node_id}: {worker} has been offline for over {after_s:g} s (no poll of it on record)"
        )
    return f"waiting for node {node.node_id}: {worker} is not online"
