"""A node's use over time, windowed: hourly buckets for the last 31 days and daily ones for 400 days,
kept in its ledger (LedgerState.usage) and merged over the window a reader asks for. Pure.

Only buckets that saw something are kept, and each records sparsely (a field at its default is not
written), so an idle hour costs nothing and a busy one a few hundred bytes. The duration histogram has
fixed log-scale bins (a ratio of 1.1 from 1 ms): a p95 read from it is within 5 % of the true one.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

HOUR_S = 3600
DAY_S = 86400
HOURS_KEPT = 31 * 24  # hourly buckets: the last 31 days
DAYS_KEPT = 400  # daily buckets: the last 400 days
BIN_RATIO = 1.1  # the histogram's bins: [FLOOR_S * 1.1**i, FLOOR_S * 1.1**(i + 1))
FLOOR_S = 0.001  # shorter runs (a no-op node: 0 s) share the bin -1
DIGITS = 3  # seconds are kept to the millisecond: shorter to store, and sums stay exact-looking
P95_ERROR = math.sqrt(BIN_RATIO) - 1  # a bin's middle (geometric) is this close to any value in it

KEEP_ZERO = frozenset({"run_min_s", "run_max_s"})  # a 0 s run is a real minimum
Resolution = Literal["hour", "day"]
SIZES: dict[str, int] = {"hour": HOUR_S, "day": DAY_S}


def duration_bin(seconds: float) -> int:
    """The histogram bin of a run of `seconds`."""
    if seconds < FLOOR_S:
        return -1
    return math.floor(math.log(seconds / FLOOR_S) / math.log(BIN_RATIO) + 1e-9)


def bin_middle(index: int) -> float:
    """The value a bin stands for: the geometric middle of its bounds (0 for the bin of runs under 1 ms)."""
    return 0.0 if index < 0 else FLOOR_S * BIN_RATIO ** (index + 0.5)


class UsageBucket(BaseModel):
    """What a node did in one hour or one day: uses that ended (by their end) and waits (by the use's
    beginning)."""

    successes: int = 0
    failures: int = 0
    cancelled: int = 0  # uses ended by an operator's cancel: apart from failures, their time cut short
    lost: int = 0  # uses cut off without an end: no duration
    run_sum_s: float = 0.0
    run_min_s: float | None = None
    run_max_s: float | None = None
    run_bins: dict[int, int] = Field(default_factory=dict)  # duration_bin -> runs
    waits: int = 0
    wait_sum_s: float = 0.0
    wait_max_s: float = 0.0

    @model_serializer(mode="wrap")
    def _sparse(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None and (k in KEEP_ZERO or v)}

    def add_run(self, duration_s: float, succeeded: bool, cancelled: bool = False) -> None:
        """A use that ended; one `cancelled` by an operator is counted apart, without its duration."""
        if cancelled and not succeeded:
            self.cancelled += 1
            return
        duration_s = round(duration_s, DIGITS)
        if succeeded:
            self.successes += 1
        else:
            self.failures += 1
        self.run_sum_s = round(self.run_sum_s + duration_s, DIGITS)
        self.run_min_s = duration_s if self.run_min_s is None else min(self.run_min_s, duration_s)
        self.run_max_s = duration_s if self.run_max_s is None else max(self.run_max_s, duration_s)
        index = duration_bin(duration_s)
        self.run_bins[index] = self.run_bins.get(index, 0) + 1

    def add_wait(self, waited_s: float) -> None:
        waited_s = round(waited_s, DIGITS)
        self.waits += 1
        self.wait_sum_s = round(self.wait_sum_s + waited_s, DIGITS)
        self.wait_max_s = max(self.wait_max_s, waited_s)

    def merge(self, other: UsageBucket) -> UsageBucket:
        """The two together (a new bucket; neither is changed)."""
        bins = dict(self.run_bins)
        for index, count in other.run_bins.items():
            bins[index] = bins.get(index, 0) + count
        return UsageBucket(
            successes=self.successes + other.successes,
            failures=self.failures + other.failures,
            cancelled=self.cancelled + other.cancelled,
            lost=self.lost + other.lost,
            run_sum_s=round(self.run_sum_s + other.run_sum_s, DIGITS),
            run_min_s=_pick(min, self.run_min_s, other.run_min_s),
            run_max_s=_pick(max, self.run_max_s, other.run_max_s),
            run_bins=bins,
            waits=self.waits + other.waits,
            wait_sum_s=round(self.wait_sum_s + other.wait_sum_s, DIGITS),
            wait_max_s=max(self.wait_max_s, other.wait_max_s),
        )

    def p95(self) -> float | None:
        """The 95th percentile of the run durations (nearest rank), from the histogram: within 5 %."""
        runs = sum(self.run_bins.values())
        if not runs or self.run_min_s is None or self.run_max_s is None:
            return None
        rank, seen = math.ceil(0.95 * runs), 0
        for index in sorted(self.run_bins):
            seen += self.run_bins[index]
            if seen >= rank:
                return min(max(bin_middle(index), self.run_min_s), self.run_max_s)
        return self.run_max_s  # not reached: the bins count every run


def _pick(choose: Any, a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else choose(a, b)


class Durations(BaseModel):
    min: float | None = None
    mean: float | None = None
    p95: float | None = Field(
        default=None, description="from a log-scale histogram: within 5 % of the exact 95th percentile"
    )
    max: float | None = None


class Waits(BaseModel):
    total: float = 0.0
    mean: float | None = None
    max: float | None = None


class NodeUsage(BaseModel):
    """A node's figures over a window of whole hours or days (`since`, `until`: the buckets merged)."""

    node: str = ""
    calls: int = Field(
        default=0, description="uses that ended in the window: successes + failures + cancelled + lost"
    )
    successes: int = 0
    failures: int = Field(
        default=0, description="uses whose driver failed (a failed status, an exception, a timeout)"
    )
    cancelled: int = Field(
        default=0,
        description="uses ended by an operator's cancel of their task while the driver ran: not failures",
    )
    lost: int = Field(default=0, description="uses cut off (their worker was lost): no duration")
    success_rate: float | None = Field(
        default=None,
        description="successes / (calls - cancelled) (0..1): an operator's cancel says nothing of the "
        "node; null: no such calls",
    )
    duration_s: Durations = Field(
        default_factory=Durations,
        description="run time of the uses that ran to their end (succeeded or failed; a cancelled one "
        "was cut short)",
    )
    waited_s: Waits = Field(
        default_factory=Waits, description="time tasks waited for the node, over the uses that began"
    )
    note: str | None = Field(default=None, description="why the figures are empty or partial")
    resolution: Resolution = "hour"
    since: datetime | None = None
    until: datetime | None = None


class UsageWindow(BaseModel):
    """The ledger's usage query: a window, and the reader's now (a query's workflow time is stale)."""

    since: datetime
    until: datetime
    now: datetime


def resolution_for(since: datetime, now: datetime) -> Resolution:
    """Hourly when the window starts within the kept hourly span (the last 31 days), else daily."""
    return "hour" if _index(since, HOUR_S) > _index(now, HOUR_S) - HOURS_KEPT else "day"


def covered(since: datetime, until: datetime, resolution: Resolution) -> tuple[datetime, datetime]:
    """The whole hours (days) the window overlaps: what its merged buckets cover."""
    size = SIZES[resolution]
    first, last = _index(since, size), -_index(-until.timestamp(), size)
    return _moment(first * size), _moment(max(last, first + 1) * size)


def _index(moment: datetime | float, size: int) -> int:
    seconds = moment.timestamp() if isinstance(moment, datetime) else moment
    return math.floor(seconds / size)


def _moment(seconds: int) -> datetime:
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except OverflowError:  # the hour after the year 9999's last
        return datetime.max.replace(tzinfo=UTC)


class UsageBuckets(BaseModel):
    """The node's buckets, by epoch hour and epoch day; recording prunes the ones past their span."""

    hours: dict[int, UsageBucket] = Field(default_factory=dict)
    days: dict[int, UsageBucket] = Field(default_factory=dict)

    def record_end(self, at: datetime, duration_s: float, succeeded: bool, cancelled: bool = False) -> None:
        for bucket in self._buckets(at):
            bucket.add_run(duration_s, succeeded, cancelled)

    def record_lost(self, at: datetime) -> None:
        for bucket in self._buckets(at):
            bucket.lost += 1

    def record_wait(self, at: datetime, waited_s: float) -> None:
        for bucket in self._buckets(at):
            bucket.add_wait(waited_s)

    def _buckets(self, at: datetime) -> tuple[UsageBucket, UsageBucket]:
        return _bucket(self.hours, _index(at, HOUR_S), HOURS_KEPT), _bucket(
            self.days, _index(at, DAY_S), DAYS_KEPT
        )

    def window(self, since: datetime, until: datetime, now: datetime | None = None) -> NodeUsage:
        """The buckets overlapping [since, until) merged: hourly if `since` is within the last 31 days
        before `now` (default: until), else daily."""
        resolution = resolution_for(since, now or until)
        start, end = covered(since, until, resolution)
        size = SIZES[resolution]
        kept = self.hours if resolution == "hour" else self.days
        first, last = _index(start, size), _index(end, size)
        total = UsageBucket()
        for index in sorted(i for i in kept if first <= i < last):
            total = total.merge(kept[index])
        return figures(total).model_copy(update={"resolution": resolution, "since": start, "until": end})


def _bucket(kept: dict[int, UsageBucket], index: int, span: int) -> UsageBucket:
    """The bucket at `index`, made if new; a new one prunes those `span` or more older."""
    if index not in kept:
        for old in [i for i in kept if i <= index - span]:
            del kept[old]
        kept[index] = UsageBucket()
    return kept[index]


def figures(total: UsageBucket) -> NodeUsage:
    """What a reader sees of merged buckets."""
    ran = total.successes + total.failures
    judged = ran + total.lost  # the calls that say something of the node: not the cancelled ones
    return NodeUsage(
        calls=judged + total.cancelled,
        successes=total.successes,
        failures=total.failures,
        cancelled=total.cancelled,
        lost=total.lost,
        success_rate=total.successes / judged if judged else None,
        duration_s=Durations(
            min=total.run_min_s,
            mean=total.run_sum_s / ran if ran else None,
            p95=total.p95(),
            max=total.run_max_s,
        ),
        waited_s=Waits(
            total=total.wait_sum_s,
            mean=total.wait_sum_s / total.waits if total.waits else None,
            max=total.wait_max_s if total.waits else None,
        ),
    )
