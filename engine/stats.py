"""The lab's statistics (GET /stats): the model, and the ISO weeks a window spans. Pure: the API fills it
from the nodes' ledgers (engine/usage.py) and Temporal's visibility."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, Field

from .usage import NodeUsage, Resolution

MAX_WEEKS = 60  # tasks_per_week: the latest 60 weeks at most (400 days are 58)
WEEK = timedelta(days=7)
LATEST = datetime.max.replace(tzinfo=UTC)


class WorkflowFigures(BaseModel):
    workflow: str
    tasks: int = Field(description="tasks of this lab workflow started in the window")
    outcomes: dict[str, int] = Field(
        description="of those, how many are in each state now (FINISHED, CANCELLED, ERROR, ACTIVE, PAUSED, "
        "PENDING)"
    )
    closed_otherwise: int = Field(
        default=0, description="closed in Temporal without a final state (terminated there, or timed out)"
    )
    note: str | None = None


class WeekFigures(BaseModel):
    week: str = Field(description="the ISO week, e.g. 2026-W48")
    start: date = Field(description="its Monday (00:00 UTC)")
    tasks: int = Field(description="tasks started in that week and in the window")


class Stats(BaseModel):
    since: datetime = Field(description="the window asked for: the task figures count starts in it")
    until: datetime
    resolution: Resolution = Field(description="the node figures' buckets: hourly within 31 days, else daily")
    nodes_since: datetime = Field(description="the node figures cover whole hours (days): from here")
    nodes_until: datetime
    nodes: list[NodeUsage]
    workflows: list[WorkflowFigures]
    tasks_per_week: list[WeekFigures]
    notes: list[str] = Field(default_factory=list, description="figures left out, and why")


def monday_of(moment: datetime) -> datetime:
    """00:00 UTC of the Monday of the moment's ISO week."""
    day = moment.astimezone(UTC).date()
    return datetime.combine(day - timedelta(days=day.weekday()), datetime.min.time(), UTC)


def iso_weeks(
    since: datetime, until: datetime, cap: int = MAX_WEEKS
) -> tuple[list[tuple[datetime, datetime]], bool]:
    """The ISO weeks [since, until) spans, each clipped to the window, the latest `cap` of them; and
    whether older ones were left out."""
    last = monday_of(until - timedelta(microseconds=1))
    first = monday_of(since)
    try:
        kept_from = max(first, last - (cap - 1) * WEEK)
    except OverflowError:  # before the year 1: every week is kept
        kept_from = first
    weeks, monday = [], kept_from
    while monday <= last:
        end = _plus_week(monday)
        weeks.append((max(monday, since), min(end, until)))
        monday = end
    return weeks, kept_from > first


def week_label(start: datetime) -> tuple[str, date]:
    """The ISO week name of a moment in it, and its Monday."""
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}", monday_of(start).date()


def _plus_week(monday: datetime) -> datetime:
    try:
        return monday + WEEK
    except OverflowError:
        return LATEST
