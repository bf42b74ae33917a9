"""A node's windowed usage (engine/usage.py) without Temporal: buckets, merging, pruning, p95, windows, the
ledger recording into it; and the ISO weeks of GET /stats (engine/stats.py)."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, date, datetime, timedelta

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter

from task_scheduler.engine.ledger import BeginUse, EndUse, Ledger, LedgerState, UseKey
from task_scheduler.engine.stats import MAX_WEEKS, iso_weeks, week_label
from task_scheduler.engine.usage import (
    DAYS_KEPT,
    HOURS_KEPT,
    P95_ERROR,
    UsageBucket,
    UsageBuckets,
    duration_bin,
)

NOW = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)  # a Tuesday


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def test_usage_counts_runs_lost_and_waits_in_the_window() -> None:
    usage = UsageBuckets()
    usage.record_wait(NOW, 4.0)
    usage.record_end(NOW, 2.0, succeeded=True)
    usage.record_wait(NOW, 0.0)
    usage.record_end(NOW, 6.0, succeeded=False)
    usage.record_lost(NOW)

    figures = usage.window(NOW - hours(1), NOW)

    assert (figures.calls, figures.successes, figures.failures, figures.lost) == (3, 1, 1, 1)
    assert figures.success_rate == pytest.approx(1 / 3)
    assert (figures.duration_s.min, figures.duration_s.mean, figures.duration_s.max) == (2.0, 4.0, 6.0)
    assert (figures.waited_s.total, figures.waited_s.mean, figures.waited_s.max) == (4.0, 2.0, 4.0)


def test_usage_of_an_empty_window_has_no_rate_and_no_durations() -> None:
    figures = UsageBuckets().window(NOW - hours(2), NOW)

    assert figures.calls == 0
    assert figures.success_rate is None
    assert figures.duration_s.min is figures.duration_s.p95 is figures.duration_s.max is None
    assert (figures.waited_s.total, figures.waited_s.mean, figures.waited_s.max) == (0.0, None, None)


def test_usage_merges_the_buckets_of_every_hour_the_window_overlaps() -> None:
    usage = UsageBuckets()
    for minutes in (-150, -90, -30, 0):  # 08:00, 09:00, 10:00, 10:30
        usage.record_end(NOW + timedelta(minutes=minutes), 1.0 + minutes / -30, succeeded=True)

    last_hour = usage.window(NOW - timedelta(minutes=20), NOW)
    two_hours = usage.window(NOW - timedelta(minutes=80), NOW)

    assert last_hour.calls == 2  # 10:00 and 10:30: the window starts in 10:00's hour
    assert last_hour.since == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert last_hour.until == datetime(2026, 12, 1, 11, tzinfo=UTC)
    assert two_hours.calls == 3
    assert (two_hours.duration_s.min, two_hours.duration_s.max) == (1.0, 4.0)


def test_usage_window_edges_are_whole_hours_end_exclusive() -> None:
    usage = UsageBuckets()
    nine = datetime(2026, 12, 1, 9, tzinfo=UTC)
    usage.record_end(nine - timedelta(microseconds=1), 1.0, succeeded=True)  # 08:59:59.999999
    usage.record_end(nine, 2.0, succeeded=True)

    from_nine = usage.window(nine, nine + hours(1))
    until_nine = usage.window(nine - hours(1), nine)

    assert (from_nine.calls, from_nine.duration_s.max) == (1, 2.0)
    assert (until_nine.calls, until_nine.duration_s.max) == (1, 1.0)
    assert (until_nine.since, until_nine.until) == (nine - hours(1), nine)


def test_usage_is_hourly_within_31_days_and_daily_before() -> None:
    usage = UsageBuckets()
    usage.record_end(NOW - timedelta(days=40), 1.0, succeeded=True)
    usage.record_end(NOW, 1.0, succeeded=True)

    recent = usage.window(NOW - timedelta(days=30), NOW, now=NOW)
    older = usage.window(NOW - timedelta(days=45), NOW, now=NOW)

    assert (recent.resolution, recent.calls) == ("hour", 1)
    assert (older.resolution, older.calls) == ("day", 2)
    assert older.since == datetime(2026, 10, 17, tzinfo=UTC)  # the whole day 45 days back
    assert older.until == datetime(2026, 12, 2, tzinfo=UTC)


def test_usage_prunes_hours_after_31_days_and_days_after_400() -> None:
    usage = UsageBuckets()
    start = NOW - timedelta(days=500)
    for day in range(0, 501, 5):
        usage.record_end(start + timedelta(days=day), 1.0, succeeded=True)

    assert len(usage.hours) == math.ceil(HOURS_KEPT / (5 * 24))  # the last 31 days, one use in 5 days
    assert min(usage.hours) > NOW.timestamp() // 3600 - HOURS_KEPT
    assert len(usage.days) == DAYS_KEPT // 5
    assert usage.window(NOW - timedelta(days=399), NOW, now=NOW).calls == 80
    assert usage.window(NOW - timedelta(days=500), NOW, now=NOW).calls == 80  # older days are gone


@pytest.mark.parametrize("scale", [0.02, 1.0, 45.0, 3600.0])
def test_usage_p95_is_within_its_stated_resolution(scale: float) -> None:
    rng = random.Random(scale)
    durations = [rng.lognormvariate(0, 1) * scale for _ in range(997)]
    usage = UsageBuckets()
    for index, seconds in enumerate(durations):
        usage.record_end(NOW - timedelta(minutes=index % 300), seconds, succeeded=True)

    p95 = usage.window(NOW - hours(6), NOW).duration_s.p95
    exact = sorted(durations)[math.ceil(0.95 * len(durations)) - 1]

    assert p95 is not None
    assert abs(p95 - exact) <= P95_ERROR * exact + 1e-12
    assert P95_ERROR < 0.05


def test_usage_p95_of_identical_runs_is_exact_and_zero_second_runs_count() -> None:
    same, zero = UsageBuckets(), UsageBuckets()
    for _ in range(20):
        same.record_end(NOW, 12.5, succeeded=True)
        zero.record_end(NOW, 0.0, succeeded=True)

    assert same.window(NOW - hours(1), NOW).duration_s.p95 == 12.5
    figures = zero.window(NOW - hours(1), NOW)
    assert (figures.duration_s.min, figures.duration_s.p95, figures.duration_s.max) == (0.0, 0.0, 0.0)


def test_usage_bins_are_about_ten_percent_wide() -> None:
    assert duration_bin(1.0) + 1 == duration_bin(1.1 * 1.0001)
    assert duration_bin(0.0) == duration_bin(0.0009) == -1
    assert duration_bin(100.0) - duration_bin(10.0) == pytest.approx(math.log(10) / math.log(1.1), abs=1)


def test_usage_bucket_merge_adds_counts_and_keeps_extremes() -> None:
    a, b = UsageBucket(), UsageBucket()
    a.add_run(3.0, True)
    a.add_wait(1.0)
    b.add_run(0.0, False)
    b.add_run(9.0, True)
    b.lost = 2

    both = a.merge(b)

    assert (both.successes, both.failures, both.lost, both.waits) == (2, 1, 2, 1)
    assert (both.run_min_s, both.run_max_s, both.run_sum_s) == (0.0, 9.0, 12.0)
    assert sum(both.run_bins.values()) == 3
    assert a.successes == 1 and b.successes == 1  # neither changed


def test_usage_survives_the_wire_sparse_and_whole() -> None:
    usage = UsageBuckets()
    usage.record_end(NOW, 0.0, succeeded=True)  # a 0 s minimum is kept, not dropped as a default
    usage.record_wait(NOW, 2.5)
    state = LedgerState(node_id="arm", usage=usage)

    payload = pydantic_data_converter.payload_converter.to_payloads([state])[0]
    back = pydantic_data_converter.payload_converter.from_payloads([payload], [LedgerState])[0]

    assert back.usage == usage
    (hour,) = json.loads(payload.data)["usage"]["hours"].values()
    assert "failures" not in hour and "lost" not in hour  # a field at its default is not written
    old = LedgerState.model_validate_json('{"node_id": "arm"}')  # a ledger from before usage
    assert old.usage == UsageBuckets()


def test_ledger_records_usage_where_uses_begin_end_and_are_lost() -> None:
    ledger = Ledger(LedgerState(node_id="arm"))
    first, second = UseKey(task_id="t1", step_index=0), UseKey(task_id="t2", step_index=0)
    ledger.begin(BeginUse(key=first, waited_s=3.0), NOW)
    ledger.end(EndUse(key=first, succeeded=True, duration_s=5.0), NOW + timedelta(seconds=5))
    ledger.begin(BeginUse(key=second, waited_s=1.0), NOW + timedelta(seconds=6))
    ledger.abandon(second, NOW + timedelta(seconds=9), "worker lost")

    figures = ledger.state.usage.window(NOW - hours(1), NOW + hours(1))

    assert (figures.calls, figures.successes, figures.lost) == (2, 1, 1)
    assert figures.duration_s.max == 5.0
    assert (figures.waited_s.total, figures.waited_s.max) == (4.0, 3.0)
    assert ledger.state.stats.calls == 1  # the cumulative figures are as before


def test_stats_weeks_start_on_monday_and_are_clipped_to_the_window() -> None:
    weeks, capped = iso_weeks(NOW - timedelta(days=10), NOW)

    assert [week_label(lo) for lo, _ in weeks] == [
        ("2026-W47", date(2026, 11, 16)),
        ("2026-W48", date(2026, 11, 23)),
        ("2026-W49", date(2026, 11, 30)),
    ]
    assert weeks[0][0] == NOW - timedelta(days=10)  # clipped: the window starts on a Saturday
    assert weeks[1] == (datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
    assert weeks[-1][1] == NOW
    assert capped is False


def test_stats_weeks_keep_the_latest_and_say_so() -> None:
    weeks, capped = iso_weeks(datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, tzinfo=UTC))

    assert len(weeks) == MAX_WEEKS
    assert capped is True
    assert weeks[-1][1] == datetime(9999, 12, 31, 23, tzinfo=UTC)
    last = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert UsageBuckets().window(last - timedelta(minutes=20), last).until == datetime.max.replace(tzinfo=UTC)


def test_usage_counts_cancelled_uses_apart_from_failures_and_leaves_them_out_of_the_rate() -> None:
    usage = UsageBuckets()
    usage.record_end(NOW, 2.0, succeeded=True)
    usage.record_end(NOW, 0.5, succeeded=False, cancelled=True)
    usage.record_end(NOW, 0.7, succeeded=False, cancelled=True)

    figures = usage.window(NOW - hours(1), NOW)

    assert (figures.calls, figures.successes, figures.failures, figures.cancelled) == (3, 1, 0, 2)
    assert figures.success_rate == 1.0  # an operator's cancel says nothing of the node
    assert (figures.duration_s.min, figures.duration_s.mean, figures.duration_s.max) == (2.0, 2.0, 2.0)
    only_cancelled = UsageBuckets()
    only_cancelled.record_end(NOW, 1.0, succeeded=False, cancelled=True)
    assert only_cancelled.window(NOW - hours(1), NOW).success_rate is None
    bucket = json.loads(only_cancelled.model_dump_json())["hours"]
    assert list(bucket.values()) == [{"cancelled": 1}]  # sparse, as every figure
