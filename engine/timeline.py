"""The lab's timeline: which task ran which step on which node, when, and how it ended, in a window that
is asked for or fitted to what it shows; and the task's wait steps (a timer on no node), apart, since
they have no node's lane. Pure: step records in, a model out (its picture: timeline_svg.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from .errors import InvalidRequestError
from .task_state import StepOutcome, StepRecord

RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_moment(text: str, now: datetime) -> datetime:
    """`now`, a duration back from now (`90s`, `30m`, `2h`, `1.5d`, `1w`) or an ISO time (UTC if it
    names no zone); an aware datetime in UTC."""
    try:
        return _moment(text, now)
    except OverflowError:
        raise InvalidRequestError(
            f"{text!r} is out of range: give a time between the years 1 and 9999"
        ) from None


def _moment(text: str, now: datetime) -> datetime:
    if text.strip().lower() == "now":
        return now.astimezone(UTC)
    relative = RELATIVE.match(text.lower())
    if relative:
        seconds = float(relative.group(1)) * UNITS[relative.group(2)]
        return (now - timedelta(seconds=seconds)).astimezone(UTC)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequestError(
            f"{text!r} is not a time: give an ISO time (2026-12-01T09:00:00Z) or a duration back "
            "from now (30m, 2h, 1d)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


FIT = "fit"  # the timeline's default window: fitted to what it shows
FIT_WITHIN = "2h"  # ... among the steps of the last 2 hours before its end
FIT_MIN_S = 60.0  # ... and at least a minute long
FIT_MARGIN = 0.05  # the first bar starts this share of the window after its left edge


def fits(since: str | None) -> bool:
    """Whether a timeline's `since` asks for the window fitted to what it shows (the default)."""
    return since is None or since.strip().lower() == FIT


def window(
    since: str | None, until: str | None, now: datetime, default: str = "2h"
) -> tuple[datetime, datetime]:
    """The [since, until) window asked for; since defaults to `default` back, until to now."""
    start = parse_moment(since or default, now)
    end = parse_moment(until, now) if until else now.astimezone(UTC)
    if start >= end:
        raise InvalidRequestError(f"since ({start.isoformat()}) must be before until ({end.isoformat()})")
    return start, end


Kind = Literal["wait", "run"]


class TimelineBar(BaseModel):
    """One bar: a step waiting for its node (requested → started) or running on it (started → end)."""

    task_id: str
    workflow_name: str | None = None
    step: int = Field(description="the step's index in its task (0: first)")
    step_id: str = Field(default="", description="the step's id in its workflow (its number from 1 if none)")
    node: str
    kind: Kind
    outcome: str = Field(description="SUCCEEDED, FAILED, LOST, RUNNING, WAITING, SKIPPED or CANCELLED")
    start: datetime
    end: datetime
    ongoing: bool = Field(default=False, description="not over at `until`: `end` is the window's end")


class TimelineWaitStep(BaseModel):
    """A wait step (`wait_s`, `wait_until`): a timer of its task on no node, from its start to its end.
    Apart from `bars`, whose every bar is on a node's lane (and which a client written before waits
    reads as it always did)."""

    task_id: str
    workflow_name: str | None = None
    step: int = Field(description="the step's index in its task (0: first)")
    step_id: str = Field(description="the step's id in its workflow (its number from 1 if none)")
    outcome: str = Field(
        description="RUNNING, SUCCEEDED (its time came), SKIPPED (an operator ended it early) or CANCELLED"
    )
    start: datetime
    end: datetime
    ongoing: bool = Field(default=False, description="not over at `until`: `end` is the window's end")
    ends_at: datetime | None = Field(default=None, description="when its time comes (or came)")


class TaskSteps(BaseModel):
    """A task and its step records, as the timeline reads them."""

    task_id: str
    workflow_name: str | None = None
    steps: Sequence[StepRecord]


class Timeline(BaseModel):
    since: datetime
    until: datetime
    nodes: list[str] = Field(description="one lane each, in the lab's order")
    tasks: int = Field(description="how many tasks have a bar or a wait step in the window")
    truncated: bool = Field(default=False, description="more tasks were in the window than were read")
    unread: int = Field(default=0, description="tasks in the window whose steps did not answer in time")
    bars: list[TimelineBar]
    wait_steps: list[TimelineWaitStep] = Field(
        default_factory=list, description="the wait steps (on no node) that ran in the window"
    )

    def starts(self) -> list[datetime]:
        """When each of its bars and wait steps starts."""
        return [b.start for b in self.bars] + [w.start for w in self.wait_steps]


def build_timeline(
    tasks: Iterable[TaskSteps],
    since: datetime,
    until: datetime,
    nodes: Sequence[str] = (),
    truncated: bool = False,
) -> Timeline:
    """Bars of every step that waited or ran in [since, until), clipped to it, and the wait steps that
    ran in it. `nodes`: the lanes in order (a node met in the records but not named gets a lane after
    them)."""
    tasks = list(tasks)
    bars = [bar for task in tasks for step in task.steps for bar in _step_bars(task, step, since, until)]
    bars.sort(key=lambda b: (b.start, b.task_id, b.step, b.kind))
    waits = [w for task in tasks for step in task.steps if (w := _wait_step(task, step, since, until))]
    waits.sort(key=lambda w: (w.start, w.task_id, w.step))
    lanes = list(dict.fromkeys([*nodes, *(b.node for b in bars)]))
    return Timeline(
        since=since,
        until=until,
        nodes=lanes,
        tasks=len({b.task_id for b in bars} | {w.task_id for w in waits}),
        truncated=truncated,
        bars=bars,
        wait_steps=waits,
    )


def fit(timeline: Timeline) -> Timeline:
    """The window narrowed to what it shows: from a little before its first bar to its end, at least
    FIT_MIN_S long and never wider than it was. A five-minute tour then fills the picture instead of
    being a sliver at its right edge; a window with no bar is kept whole (it says nothing ran in it)."""
    starts = timeline.starts()
    if not starts:
        return timeline
    first = min(starts)
    shown_s = (timeline.until - first).total_seconds()
    span_s = max(FIT_MIN_S, shown_s * (1 + FIT_MARGIN))
    since = max(timeline.since, timeline.until - timedelta(seconds=span_s))
    return timeline.model_copy(update={"since": since})


def _step_bars(task: TaskSteps, step: StepRecord, since: datetime, until: datetime) -> list[TimelineBar]:
    if step.node is None or (step.requested_at is None and step.started_at is None):
        return []  # a wait (on no node), or never reached its node
    spans: list[tuple[Kind, str, datetime, datetime | None]] = []
    if step.requested_at is not None and (step.started_at is None or step.started_at > step.requested_at):
        waited_until = step.started_at or (step.finished_at if step.finished_at else None)
        spans.append(("wait", StepOutcome.WAITING.value, step.requested_at, waited_until))
    if step.started_at is not None:
        spans.append(("run", _run_outcome(step), step.started_at, step.finished_at))
    bars = []
    for kind, outcome, start, end in spans:
        if (clipped := _clip(start, end, since, until)) is None:
            continue
        lo, hi, ongoing = clipped
        bars.append(
            TimelineBar(
                task_id=task.task_id,
                workflow_name=task.workflow_name,
                step=step.index,
                step_id=step.id,
                node=step.node,
                kind=kind,
                outcome=outcome,
                start=lo,
                end=hi,
                ongoing=ongoing,
            )
        )
    return bars


def _wait_step(
    task: TaskSteps, step: StepRecord, since: datetime, until: datetime
) -> TimelineWaitStep | None:
    """A wait step that began, clipped to [since, until); None for a step on a node, or out of it."""
    if not step.is_wait or step.started_at is None:
        return None
    if (clipped := _clip(step.started_at, step.finished_at, since, until)) is None:
        return None
    lo, hi, ongoing = clipped
    return TimelineWaitStep(
        task_id=task.task_id,
        workflow_name=task.workflow_name,
        step=step.index,
        step_id=step.id,
        outcome=_run_outcome(step),
        start=lo,
        end=hi,
        ongoing=ongoing,
        ends_at=step.ends_at,
    )


def _clip(
    start: datetime, end: datetime | None, since: datetime, until: datetime
) -> tuple[datetime, datetime, bool] | None:
    """[start, end) within [since, until), and whether it goes on past `until` (no end: not over yet);
    None when none of it is in the window (a moment is, when it falls in it)."""
    lo, hi = max(start, since), min(end or until, until)
    if hi <= lo and not (lo == hi and since <= lo < until):
        return None
    return lo, hi, end is None or end > until


def _run_outcome(step: StepRecord) -> str:
    if step.finished_at is None and step.outcome in (StepOutcome.PENDING, StepOutcome.WAITING):
        return StepOutcome.RUNNING.value
    return step.outcome.value
