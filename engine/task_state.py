"""A task's state, as its TaskWorkflow keeps it and answers it: the record of each step, what the task
shows (TaskStatus), its whole state (TaskMemory), and the operators' commands it keeps. The rules that
change them are here, free of Temporal; the workflow gives them its clock.

Every field has a default or is required from the start, so fields can be added without breaking the
histories of running tasks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from .ledger_models import RunAccounted
from .models import NextExecution
from .protocol import step_name
from .states import TaskState


class StepOutcome(StrEnum):
    PENDING = "PENDING"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    LOST = "LOST"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"


WAITING_OUTCOMES = (StepOutcome.PENDING, StepOutcome.WAITING, StepOutcome.RUNNING)


class CutOffRun(BaseModel):
    """A run of a step that its task gave up as cut off: its worker stopped heartbeating while the
    driver ran. The node's ledger accounts for it later (its late end, or its worker replaced). Kept in
    the step's record as one of its `earlier_runs` (the field's name is on the wire)."""

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
    """What happened to one step, kept in the task's state and shown by its status: a step on a node
    (`node`), or a wait (no node; `ends_at` once it began). `id`: the step's id in its workflow, its
    number from 1 if it has none."""

    index: int
    node: str | None = None
    id: str = ""
    ends_at: datetime | None = None  # a wait's end, set when it begins
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
    earlier_runs: list[CutOffRun] = Field(default_factory=list)
    # The driver raised: its own frames (from its `_execute` down), as the worker logged them.
    traceback: str | None = None
    # A step with `holds`: every node it takes (its own included), in the order it takes them, and
    # those it has for its current run; both empty once it let them go.
    holds: list[str] = Field(default_factory=list)
    held: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _numbered(self) -> StepRecord:
        """A record kept before steps had ids (or made without one) is its step's number."""
        if not self.id:
            self.id = step_name(self.index, None)
        return self

    @property
    def is_wait(self) -> bool:
        return self.node is None

    def take_grant(self, run: int, node_id: str) -> bool:
        """A hold activity has `node_id` for run `run`: kept once, and only for the run taking it."""
        if run != self.runs or node_id not in self.holds or node_id in self.held:
            return False
        self.held.append(node_id)
        return True

    def holding_text(self) -> str | None:
        """While it takes its nodes: which it has and which it waits for (the API, CLI and page)."""
        if not self.holds or self.held == self.holds:
            return None
        waiting = next(n for n in self.holds if n not in self.held)
        has = f"holds {', '.join(self.held)}; " if self.held else ""
        return f"{has}waiting for {waiting} (it takes {', '.join(self.holds)} in this order)"

    def unaccounted_run(self) -> CutOffRun | None:
        """A run given up as cut off whose end is not known yet: its driver may still be running."""
        return next((r for r in self.earlier_runs if not r.accounted), None)

    def take(self, report: StepReport, outcome: StepOutcome) -> None:
        """The step activity's report of this run, and what it came to."""
        self.outcome = outcome
        self.attempts = report.attempt
        self.started_at, self.finished_at = report.started_at, report.finished_at
        self.waited_s = report.waited_s
        self.status, self.message, self.endpoint = report.status, report.message, report.endpoint
        self.output, self.logs, self.traceback = report.output, report.logs, report.traceback

    def take_cancelled(self, report: StepReport, by: str | None) -> None:
        """The report of a run an operator cancelled while its driver ran: since when it ran, how its
        driver ended, its lines; the message says who cancelled it and after how long."""
        self.take(report, StepOutcome.CANCELLED)
        after = ""
        if report.started_at is not None and report.finished_at is not None:
            after = f" after {(report.finished_at - report.started_at).total_seconds():.1f} s"
        how = report.message or "its driver was asked to abort"
        self.message = f"cancelled by {by or 'an operator'}{after}: {how}"

    def take_cancel(self, by: str | None) -> None:
        """Its task was cancelled, and this step's run reported nothing: its driver had not started (it
        waited for its node). A step that failed before keeps its failure's message."""
        unreported = self.outcome in WAITING_OUTCOMES and self.started_at is None
        self.outcome = StepOutcome.CANCELLED
        if unreported and self.message is None:
            self.message = f"cancelled by {by or 'an operator'} before its driver started"

    def cut_off(
        self, at: datetime, attempt: int | None, worker: str | None, started_at: datetime | None
    ) -> CutOffRun:
        """This run is given up as cut off (LOST), with what its last heartbeat said of it."""
        run = CutOffRun(
            run=self.runs,
            attempt=attempt or self.attempts or 1,
            worker=worker,
            started_at=started_at,
            lost_at=at,
        )
        self.outcome = StepOutcome.LOST
        self.earlier_runs.append(run)
        return run

    def account(self, accounted: RunAccounted) -> CutOffRun | None:
        """The node's ledger says how a run given up as cut off ended; None if it is not one of ours."""
        run = next((r for r in self.earlier_runs if r.run == accounted.key.run), None)
        if run is None:
            return None
        run.accounted, run.late_outcome = True, accounted.outcome.value
        run.late_status, run.late_message = accounted.status, accounted.message
        run.late_ended_at = accounted.ended
        return run


class StepArchive(BaseModel):
    """Step records a task left in the state of one of its earlier Temporal runs (continue-as-new):
    that run, queried by its run id, still answers them, outputs and logs included."""

    first: int
    last: int
    run_id: str


class TaskStatus(BaseModel):
    """What a task shows of itself: the answer of its status query, and the part of its whole state
    (TaskMemory) that an operator or a client reads.

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
    def current_record(self) -> StepRecord | None:
        return None if self.current_step is None else self.record(self.current_step)

    @property
    def current_node(self) -> str | None:
        record = self.current_record
        return record.node if record else None

    def reach(self, index: int, nodes: Sequence[str | None], ids: Sequence[str] = ()) -> StepRecord:
        """The record of step `index`, made (with the PENDING ones before it) when the task gets there;
        `nodes`: the node of each step (None: a wait), `ids` its id (none given: their numbers)."""
        while self.steps_offset + len(self.steps) <= index:
            position = self.steps_offset + len(self.steps)
            self.steps.append(blank_record(position, nodes, ids))
        record = self.record(index)
        assert record is not None  # the task never goes back before the steps it archived
        return record

    def output_of(self, index: int) -> dict[str, Any] | None:
        """A succeeded step's output; None for a skipped step, and for a step whose record is archived
        in an earlier Temporal run (its output is there, in the step records and the history)."""
        record = self.record(index)
        return record.output if record and record.outcome is StepOutcome.SUCCEEDED else None

    def cancelled_by(self) -> str | None:
        """Who gave the task's cancel (its last decision), if it came through our commands."""
        last = self.decisions[-1] if self.decisions else None
        return last.by if last is not None and last.command == "cancel" else None

    def decide(self, decision: Decision) -> None:
        """Keep an operator's command, with the DECISIONS_KEPT before it."""
        self.decisions = [*self.decisions, decision][-DECISIONS_KEPT:]

    def window(self, size: int) -> int:
        """Where the `size` records the status answers with begin: around the current step (all of a
        small task's), never before the records this run holds."""
        total = self.steps_total
        current = self.current_step if self.current_step is not None else total
        return max(self.steps_offset, min(current - size // 4, total - size), 0)


class TaskMemory(BaseModel):
    """A TaskWorkflow's whole state in one model, handed whole to the next Temporal run at
    continue-as-new: what the task shows (`status`) and what it keeps for itself (where it goes next,
    the operator's decision being carried out, the runs lost while waiting, its archives)."""

    status: TaskStatus
    next_step: int = 0
    # An operator's continue after a failure: kept until it has been carried out (the task has left
    # ERROR), so a second continue meanwhile is refused instead of deciding the next failure.
    decision: ContinueRequest | None = None
    resume: bool = False  # an operator's continue of a paused task, not yet honoured
    # Step index -> the first run lost while its heartbeat said "waiting": its rerun asks the ledger
    # whether that run used the node after all (BeginUse.lost_run).
    lost_runs: dict[int, int] = Field(default_factory=dict)
    # Step id -> why it stopped the task, for each failed step that awaits an operator's decision.
    failures: dict[str, str] = Field(default_factory=dict)
    temporal_runs: int = 1  # how many Temporal runs (continue-as-new) this task has had
    stops: int = 0  # how many times it stopped for an operator (each stop's notifications have their key)
    skipped: int = 0  # steps an operator skipped (continue, next): the finished notification counts them
    archives: list[StepArchive] = Field(default_factory=list)

    def records(
        self, offset: int, limit: int, nodes: Sequence[str | None], ids: Sequence[str] = ()
    ) -> StepRecords:
        """Records `offset`.. (at most `limit`) that this run knows, the steps not reached yet PENDING;
        steps archived in earlier runs are named by `archives`."""
        status = self.status
        first = max(offset, status.steps_offset)
        last = min(offset + limit, status.steps_total)
        steps = [status.record(i) or blank_record(i, nodes, ids) for i in range(first, last)]
        archives = [a for a in self.archives if a.first < offset + limit and a.last >= offset]
        return StepRecords(total=status.steps_total, offset=first, steps=steps, archives=archives)

    def carried(self, run_id: str, keep_from: int | None = None) -> TaskMemory:
        """The whole state for the next Temporal run, except the records of the steps before
        `keep_from` (by default the step before the next, whose output the next step takes): they stay
        in this run's state (`run_id`, which answers them when queried), so the state handed on stays
        small."""
        carried = self.model_copy(deep=True)
        status = carried.status
        keep_from = max(status.steps_offset, self.next_step - 1 if keep_from is None else keep_from)
        if keep_from > status.steps_offset:
            carried.archives.append(StepArchive(first=status.steps_offset, last=keep_from - 1, run_id=run_id))
            status.steps = status.steps[keep_from - status.steps_offset :]
            status.steps_offset = keep_from
        carried.temporal_runs += 1
        return carried


class ContinueRequest(BaseModel):
    """An operator's continue: after a failed step, run it again (`retry`) or move on (`next`); a
    running wait is ended with `next`. `step` (its id or number) names the step it is about, needed only
    when several could be meant; the task fills it in when it takes the request."""

    mode: Literal["retry", "next"] = "retry"
    step: str | None = None
    note: str | None = None
    by: str | None = None
    reason: str | None = None


class CommandRequest(BaseModel):
    """An operator's pause or cancel, with who asked and why (kept in the task's history)."""

    reason: str | None = None
    by: str | None = None


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


def blank_record(index: int, nodes: Sequence[str | None], ids: Sequence[str] = ()) -> StepRecord:
    """The record of a step not reached yet: PENDING."""
    return StepRecord(index=index, node=nodes[index], id=ids[index] if ids else "")


class CommandAck(BaseModel):
    """What an operator's command answers: small, since every answer is written to the history."""

    task_id: str
    state: TaskState
    pause_requested: bool = False


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
    traceback: str | None = None  # see StepRecord.traceback


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


StepRecord.model_rebuild()
TaskStatus.model_rebuild()
TaskMemory.model_rebuild()
