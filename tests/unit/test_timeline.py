"""The timeline model from step records, the time parser, and the SVG: valid XML, a lane per node, a bar
per wait and run, legible with 200 tasks on 10 nodes."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from task_scheduler.engine.errors import InvalidRequestError
from task_scheduler.engine.task_state import StepOutcome, StepRecord
from task_scheduler.engine.timeline import TaskSteps, build_timeline, fit, parse_moment, window
from task_scheduler.engine.timeline_svg import layout, render_svg

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def at(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def step(
    index: int, node: str, requested: float, started: float | None, finished: float | None, outcome: str
):
    return StepRecord(
        index=index,
        node=node,
        outcome=StepOutcome(outcome),
        requested_at=at(requested),
        started_at=at(started) if started is not None else None,
        finished_at=at(finished) if finished is not None else None,
    )


def sample() -> list[TaskSteps]:
    return [
        TaskSteps(
            task_id="t1",
            workflow_name="assay",
            steps=[
                step(0, "a", 50, 45, 40, "SUCCEEDED"),  # waited 5 min, ran 5 min
                step(1, "b", 40, 40, 30, "FAILED"),  # no wait
            ],
        ),
        TaskSteps(
            task_id="t2",
            steps=[
                step(0, "a", 42, 40, None, "RUNNING"),
                step(1, "b", 0, None, None, "PENDING").model_copy(update={"requested_at": None}),
            ],
        ),
        TaskSteps(task_id="t3", steps=[step(0, "b", 10, None, None, "WAITING")]),
    ]


def test_parse_moment_reads_relative_and_iso_times() -> None:
    assert parse_moment("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_moment("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_moment("1.5d", NOW) == NOW - timedelta(hours=36)
    assert parse_moment("now", NOW) == NOW
    assert parse_moment("2026-12-01T10:00:00Z", NOW) == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert parse_moment("2026-12-01T11:00:00+01:00", NOW) == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert parse_moment("2026-12-01 10:00", NOW) == datetime(2026, 12, 1, 10, tzinfo=UTC)


def test_parse_moment_refuses_what_is_no_time_and_an_empty_window() -> None:
    with pytest.raises(InvalidRequestError, match="not a time"):
        parse_moment("yesterday", NOW)
    with pytest.raises(InvalidRequestError, match="out of range"):
        parse_moment("99999999999999w", NOW)
    with pytest.raises(InvalidRequestError, match="out of range"):
        parse_moment("0001-01-01T00:00:00+05:00", NOW)
    with pytest.raises(InvalidRequestError, match="before until"):
        window("1h", "2h", NOW)
    assert window(None, None, NOW) == (NOW - timedelta(hours=2), NOW)


def test_build_timeline_gives_a_bar_per_wait_and_run_clipped_to_the_window() -> None:
    timeline = build_timeline(sample(), at(60), NOW, nodes=["a", "b", "c"])

    got = {(b.task_id, b.step, b.kind): (b.outcome, b.start, b.end, b.ongoing) for b in timeline.bars}
    assert got == {
        ("t1", 0, "wait"): ("WAITING", at(50), at(45), False),
        ("t1", 0, "run"): ("SUCCEEDED", at(45), at(40), False),
        ("t1", 1, "run"): ("FAILED", at(40), at(30), False),
        ("t2", 0, "wait"): ("WAITING", at(42), at(40), False),
        ("t2", 0, "run"): ("RUNNING", at(40), NOW, True),
        ("t3", 0, "wait"): ("WAITING", at(10), NOW, True),
    }
    assert timeline.nodes == ["a", "b", "c"]
    assert timeline.tasks == 3


def test_build_timeline_clips_and_drops_bars_outside_the_window() -> None:
    timeline = build_timeline(sample(), at(44), at(35))

    got = {(b.task_id, b.step, b.kind): (b.start, b.end) for b in timeline.bars}
    assert got == {
        ("t1", 0, "run"): (at(44), at(40)),
        ("t1", 1, "run"): (at(40), at(35)),
        ("t2", 0, "wait"): (at(42), at(40)),
        ("t2", 0, "run"): (at(40), at(35)),
    }
    assert timeline.nodes == ["a", "b"]  # the nodes met, when the lab's are not given


def test_render_svg_parses_with_a_lane_per_node_and_a_bar_per_step_span() -> None:
    timeline = build_timeline(sample(), at(60), NOW, nodes=["a", "b", "c"])

    root = ET.fromstring(render_svg(timeline))

    rects = list(root.iter(f"{SVG}rect"))
    assert len([r for r in rects if r.get("class") == "lane"]) == 3
    runs = [r for r in rects if (r.get("class") or "").startswith("run ")]
    waits = [r for r in rects if (r.get("class") or "").startswith("wait ")]
    assert len(runs) == 3 and len(waits) == 3
    assert {r.get("class") for r in runs} == {"run succeeded", "run failed", "run running"}
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    assert any(t.startswith("t1 step 2 on b: FAILED") for t in titles)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"a", "b", "c", "succeeded", "failed", "lost", "running", "waiting"} <= set(texts)
    assert not list(root.iter(f"{SVG}script"))


def test_render_svg_of_200_tasks_on_10_nodes_shows_every_bar() -> None:
    nodes = [f"node-{i}" for i in range(10)]
    tasks = []
    for t in range(200):
        steps = [
            step(
                s,
                nodes[(t + s) % 10],
                119 - t * 0.5 - s * 3,
                118.8 - t * 0.5 - s * 3,
                118.7 - t * 0.5 - s * 3,
                "FAILED" if t % 17 == 0 else "SUCCEEDED",
            )
            for s in range(3)
        ]
        tasks.append(TaskSteps(task_id=f"plate-assay-{t:04d}", steps=steps))
    timeline = build_timeline(tasks, at(120), NOW, nodes=nodes)

    svg = render_svg(timeline)  # its speed is bench/'s to measure, not a unit test's

    root = ET.fromstring(svg)
    bars = [r for r in root.iter(f"{SVG}rect") if (r.get("class") or "").split(" ")[0] in ("run", "wait")]
    assert len([b for b in bars if b.get("class", "").startswith("run")]) == 600
    assert all(float(b.get("width", "0")) >= 1.0 for b in bars)
    assert len([r for r in root.iter(f"{SVG}rect") if r.get("class") == "lane"]) == 10
    # The lanes' height does not grow with the tasks, only with the steps that run at once on a node:
    # here two (steps s and s + 2 of tasks 12 apart start together), so each lane has two rows.
    assert [lane.rows for lane in layout(timeline)] == [2] * 10
    height = float(root.get("height", "0"))
    assert height < 40 + 10 * 2 * 30 + 32 + 3 * 18


def test_render_svg_says_when_tasks_were_left_out() -> None:
    timeline = build_timeline(sample(), at(60), NOW, truncated=True)
    timeline.unread = 2

    heading = next(ET.fromstring(render_svg(timeline)).iter(f"{SVG}text")).text or ""

    assert heading.startswith("3 tasks, 3 step runs, 2026-12-01 11:00:00 to 2026-12-01 12:00:00 UTC")
    assert "truncated" in heading
    assert "2 tasks unread" in heading


def test_fit_narrows_the_window_to_a_short_tour_with_a_margin_and_at_least_a_minute() -> None:
    tour = [TaskSteps(task_id="tour-1", steps=[step(0, "a", 12, 12, 10, "SUCCEEDED")])]
    just_now = [TaskSteps(task_id="tour-2", steps=[step(0, "a", 0.5, 0.5, 0.25, "SUCCEEDED")])]

    fitted = fit(build_timeline(tour, at(120), NOW))
    short = fit(build_timeline(just_now, at(120), NOW))
    nothing = fit(build_timeline([], at(120), NOW))
    before = [TaskSteps(task_id="t0", steps=[step(0, "a", 70, 70, 30, "SUCCEEDED")])]
    old = fit(build_timeline(before, at(60), NOW))

    assert at(13) < fitted.since < at(12)  # the tour starts near the left edge, not as a sliver at the right
    assert fitted.until == NOW
    assert short.since == at(1)
    assert nothing.since == at(120)  # nothing ran: the whole window says so
    assert old.since == at(60)  # never wider than the window read


@pytest.mark.parametrize("width", [480, 940, 1200, 2400])
def test_render_svg_at_any_width_keeps_its_text_inside_the_picture(width: int) -> None:
    timeline = build_timeline(sample(), at(60), NOW, nodes=["a", "b", "c"])

    root = ET.fromstring(render_svg(timeline, width))

    assert root.get("width") == str(width)
    assert root.get("viewBox") == f"0 0 {width} {root.get('height')}"
    legend = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "legend")
    ends = [float(t.get("x", "0")) + len(t.text or "") * 6.2 for t in legend.iter(f"{SVG}text")]
    assert max(ends) <= width
    ticks = [float(t.get("x", "0")) for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert len(ticks) >= 2 and min(b - a for a, b in itertools.pairwise(ticks)) >= 60


def test_render_svg_heading_counts_in_words() -> None:
    one = [TaskSteps(task_id="t1", steps=[step(0, "a", 10, 10, 5, "SUCCEEDED")])]

    heading = next(ET.fromstring(render_svg(build_timeline(one, at(60), NOW))).iter(f"{SVG}text")).text

    assert (heading or "").startswith("1 task, 1 step run, ")


def wait_step(index: int, step_id: str, started: float, finished: float | None, outcome: str, ends: float):
    return StepRecord(
        index=index,
        id=step_id,
        outcome=StepOutcome(outcome),
        started_at=at(started),
        finished_at=at(finished) if finished is not None else None,
        ends_at=at(ends),
    )


def branches() -> list[TaskSteps]:
    """t1: `uv` and `shake` branches on one node of capacity 2, overlapping, a third step `mix` waiting
    on it behind them, and the wait `settle` going on; t2: a wait only, ended early by an operator."""
    uv = step(0, "a", 30, 30, 10, "SUCCEEDED").model_copy(update={"id": "uv"})
    shake = step(1, "a", 25, 25, 15, "SUCCEEDED").model_copy(update={"id": "shake"})
    mix = step(2, "a", 20, 10, 5, "SUCCEEDED").model_copy(update={"id": "mix"})
    return [
        TaskSteps(
            task_id="t1",
            steps=[uv, shake, mix, wait_step(3, "settle", 5, None, "RUNNING", -5)],
        ),
        TaskSteps(task_id="t2", steps=[wait_step(0, "cool", 20, 12, "SKIPPED", 2)]),
        TaskSteps(task_id="t3", steps=[StepRecord(index=0, id="later")]),  # a wait not begun
    ]


def test_build_timeline_gives_wait_steps_apart_from_the_bars_on_nodes() -> None:
    timeline = build_timeline(branches(), at(60), NOW, nodes=["a"])

    assert {(b.task_id, b.step_id) for b in timeline.bars} == {("t1", "uv"), ("t1", "shake"), ("t1", "mix")}
    got = {
        (w.task_id, w.step_id): (w.outcome, w.start, w.end, w.ongoing, w.ends_at) for w in timeline.wait_steps
    }
    assert got == {
        ("t1", "settle"): ("RUNNING", at(5), NOW, True, at(-5)),
        ("t2", "cool"): ("SKIPPED", at(20), at(12), False, at(2)),
    }
    assert timeline.nodes == ["a"]  # a wait has no node's lane
    assert timeline.tasks == 2  # t2 shows its wait alone; t3 nothing yet
    bar = timeline.model_dump(mode="json")["bars"][0]
    assert bar.keys() >= {"task_id", "step", "step_id", "node", "kind", "outcome"}  # the old fields stay
    assert fit(build_timeline(branches()[1:2], at(120), NOW)).since < at(20)  # fitted to the wait too


def test_render_svg_puts_overlapping_steps_of_one_task_in_rows_of_their_own() -> None:
    timeline = build_timeline(branches(), at(60), NOW, nodes=["a", "b"])

    lanes = layout(timeline)
    root = ET.fromstring(render_svg(timeline))

    a, b, waits = lanes
    assert (a.label, a.rows, b.rows) == ("a", 3, 1)  # uv, shake and mix (waiting behind them) side by side
    assert sorted(p.row for p in a.placed) == [0, 1, 2]
    runs = {r.get("y") for r in root.iter(f"{SVG}rect") if (r.get("class") or "").startswith("run ")}
    assert len(runs) == 3  # one above the other, none hidden
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"t1 · uv", "t1 · shake"} <= set(texts)  # which branch each bar is
    assert (waits.label, waits.waits, waits.rows) == ("(wait steps)", True, 1)  # cool, then settle


def test_render_svg_draws_wait_steps_hatched_on_their_own_lane_with_their_step_id() -> None:
    timeline = build_timeline(branches(), at(60), NOW, nodes=["a"])

    root = ET.fromstring(render_svg(timeline))

    shown = {
        r.get("class") for r in root.iter(f"{SVG}rect") if (r.get("class") or "").startswith("wait-step")
    }
    assert shown == {"wait-step running", "wait-step skipped"}
    assert list(root.iter(f"{SVG}pattern"))  # the hatching
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"(wait steps)", "settle", "cool", "wait step (no node)"} <= texts
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    settle = "t1 wait step settle (4): RUNNING, 2026-12-01 11:55:00 to (ongoing)"
    assert f"{settle}, its time comes 2026-12-01 12:05:00" in titles
    heading = next(root.iter(f"{SVG}text")).text or ""
    assert heading.startswith("2 tasks, 3 step runs, 2 wait steps, ")


def test_wait_steps_that_overlap_get_rows_and_waits_for_a_node_share_one() -> None:
    settles = [
        TaskSteps(task_id=f"t{i}", steps=[wait_step(0, "settle", 30 - i, 10, "SUCCEEDED", 10)])
        for i in range(3)
    ]
    line = [
        TaskSteps(task_id=f"q{i}", steps=[step(0, "a", 50, 40 - i * 5, 38 - i * 5, "SUCCEEDED")])
        for i in range(4)
    ]

    lanes = layout(build_timeline(settles + line, at(60), NOW, nodes=["a"]))

    assert [lane.rows for lane in lanes] == [1, 3]  # a line of 4 tasks for the node does not make 4 rows
    assert render_svg(build_timeline(settles, at(60), NOW, nodes=[]))  # no node: the waits' lane alone
