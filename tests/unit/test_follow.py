"""What `task wait` prints as a task goes on: the task once, then one line per change; on a terminal,
the running step's elapsed time on a last line rewritten in place, at most once a second."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from task_scheduler.cli.follow import ERASE_LINE, TaskFollower, duration_text
from task_scheduler.cli.render import render_nodes, render_task, render_tasks

STARTED = datetime(2026, 12, 1, 14, 0, 0, tzinfo=UTC)


def step(index: int, node: str, outcome: str, **extra: Any) -> dict[str, Any]:
    return {"index": index, "node": node, "outcome": outcome, "message": None, **extra}


def task(state: str, steps: list[dict[str, Any]], current: int | None = 0, **extra: Any) -> dict[str, Any]:
    return {
        "task_id": "t-1",
        "workflow_name": "quick-check",
        "state": state,
        "current_step": current,
        "steps": steps,
        "temporal_status": "RUNNING",
        "ui_url": "http://127.0.0.1:8233/namespaces/default/workflows/t-1",
        **extra,
    }


RUNNING_ARM = step(0, "arm", "RUNNING", started_at=STARTED.isoformat())
DONE_ARM = step(
    0, "arm", "SUCCEEDED", started_at=STARTED.isoformat(), finished_at="2026-12-01T14:00:03+00:00"
)
LIFE = [
    task("ACTIVE", [RUNNING_ARM, step(1, "reader", "PENDING")]),
    task("ACTIVE", [RUNNING_ARM, step(1, "reader", "PENDING")]),  # nothing changed
    task("ACTIVE", [DONE_ARM, step(1, "reader", "WAITING", waiting_position=1)], current=1),
    task("FINISHED", [DONE_ARM, step(1, "reader", "SUCCEEDED", message="read")], current=None),
]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    """The wall clock the elapsed time is counted on, and the monotonic one that paces the live line."""

    def __init__(self) -> None:
        self.at = STARTED

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return (self.at - STARTED).total_seconds()


def follow(answers: list[tuple[float, dict[str, Any]]], tty: bool) -> str:
    """Show each answer at its second after the step started, as `task wait` does; what was written."""
    out, clock = Terminal() if tty else io.StringIO(), Clock()
    follower = TaskFollower(out, tty=tty, now=clock.now, clock=clock.monotonic)
    for at_s, answer in answers:
        clock.at = STARTED + timedelta(seconds=at_s)
        follower.show(answer)
    follower.close()
    return out.getvalue()


def test_follow_not_a_tty_prints_the_task_then_one_line_per_change() -> None:
    written = follow(list(zip([1, 2, 3, 4], LIFE, strict=True)), tty=False)

    assert written.splitlines() == [
        "task t-1  quick-check  ACTIVE",
        "  > 1. arm            RUNNING              (running since 2026-12-01 14:00:00 UTC)",
        "    2. reader         PENDING",
        "  Temporal UI: http://127.0.0.1:8233/namespaces/default/workflows/t-1",
        "    1. arm            SUCCEEDED     3.0 s",
        "  > 2. reader         WAITING              (number 1 in its node's line)",
        "    2. reader         SUCCEEDED            read",
        "task t-1  quick-check  FINISHED",
        "  Temporal UI: http://127.0.0.1:8233/namespaces/default/workflows/t-1",
    ]
    assert "\r" not in written


def test_follow_on_a_tty_shows_the_running_step_s_time_in_place_at_most_once_a_second() -> None:
    running = LIFE[0]
    answers = [(0.2, running), (0.7, running), (1.3, running), (1.6, running), (65.0, running), (66, LIFE[2])]

    written = follow(answers, tty=True)

    live = [part for part in written.split(ERASE_LINE) if part and "\n" not in part]
    assert live == [f"    1. arm            running for {t}" for t in ("0 s", "1 s", "1 min 05 s")]
    assert written.count("\n") == 4 + 2 + 1  # the task, a line per change, the Temporal UI link again
    before_change = written.index("    1. arm            SUCCEEDED")
    assert written[:before_change].endswith(ERASE_LINE)  # the live line is erased, not left beside it


def test_follow_of_a_task_already_over_prints_it_once() -> None:
    written = follow([(5, LIFE[-1])], tty=True)

    assert written.count("Temporal UI") == 1
    assert ERASE_LINE not in written


def test_follow_shows_temporal_s_status_only_when_it_is_not_what_the_state_implies() -> None:
    ended = task("ACTIVE", [RUNNING_ARM], temporal_status="TERMINATED")

    written = follow([(1, LIFE[0]), (2, ended)], tty=False)

    assert "task t-1  quick-check  ACTIVE  (Temporal: TERMINATED)" not in written  # the state did not change
    assert follow([(1, ended)], tty=False).startswith(
        "task t-1  quick-check  ACTIVE  (Temporal: TERMINATED)\n"
    )


def test_duration_text_counts_seconds_minutes_and_hours() -> None:
    assert [duration_text(s) for s in (-1, 42, 185, 3720)] == ["0 s", "42 s", "3 min 05 s", "1 h 02 min"]


def test_task_list_has_a_header_and_aligned_columns_and_one_word_for_the_end() -> None:
    rows = [
        {"task_id": "t-1", "workflow_name": "quick-check", "state": "CANCELLED", "current_node": None},
        {
            "task_id": "a-much-longer-id",
            "workflow_name": "prepare-plate",
            "state": "ACTIVE",
            "current_node": "arm",
        },
        {"task_id": "t-3", "workflow_name": "quick-check", "state": "ACTIVE", "current_node": "arm"},
    ]
    rows[0]["temporal_status"], rows[1]["temporal_status"] = "CANCELED", "RUNNING"
    rows[2]["temporal_status"] = "TERMINATED"

    lines = render_tasks(rows).splitlines()

    assert lines == [
        "TASK              WORKFLOW       STATE      NODE",
        "t-1               quick-check    CANCELLED  -",
        "a-much-longer-id  prepare-plate  ACTIVE     arm",
        "t-3               quick-check    ACTIVE     arm   (Temporal: TERMINATED)",
    ]
    assert render_tasks([]) == "no tasks"


def test_node_list_has_a_header_and_aligned_columns() -> None:
    nodes = [
        {
            "id": "arm",
            "state": "IN_USE",
            "worker": None,
            "online": True,
            "hosted": True,
            "waiting_tasks": ["t-2"],
        },
        {"id": "dispenser", "state": "OFFLINE", "worker": "pc-2", "online": False, "hosted": False},
    ]
    nodes[0]["holder"] = {"key": {"task_id": "t-1"}}
    nodes[1] |= {"waiting_tasks": [], "reason": "its worker pc-2 is not online"}

    assert render_nodes(nodes).splitlines() == [
        "NODE       STATE    WORKER  ONLINE   HOLDER  WAITING  REASON",
        "arm        IN_USE   -       online   t-1     1",
        "dispenser  OFFLINE  pc-2    OFFLINE  -       0        its worker pc-2 is not online",
    ]


def test_task_show_puts_the_driver_s_frames_under_its_failed_step() -> None:
    from task_scheduler.cli.render import render_task

    frames = "\n".join(
        [
            "Traceback (most recent call last):",
            '  File "lab_nodes.py", line 42, in _execute',
            "KeyError: 'sample'",
        ]
    )
    failed = step(0, "arm", "FAILED", message="KeyError: 'sample' (at lab_nodes.py:42, in _execute)")
    shown = render_task(task("ERROR", [{**failed, "traceback": frames}, step(1, "reader", "PENDING")]))

    lines = shown.splitlines()
    at = next(i for i, line in enumerate(lines) if "1. arm" in line)
    assert lines[at + 1 : at + 4] == [
        "       Traceback (most recent call last):",
        '         File "lab_nodes.py", line 42, in _execute',
        "       KeyError: 'sample'",
    ]
    assert "2. reader" in lines[at + 4]


def test_render_task_of_a_protocol_names_its_steps_marks_each_branch_and_a_waits_time_left() -> None:
    at = STARTED.isoformat()
    ends = (STARTED + timedelta(seconds=185)).isoformat()
    steps = [
        step(0, "arm", "SUCCEEDED", id="A", started_at=at, finished_at=at),
        step(1, "reader", "RUNNING", id="B", started_at=at),
        {**step(2, "", "RUNNING", id="settle", started_at=at), "node": None, "ends_at": ends},
        step(3, "arm", "PENDING", id="4"),
    ]
    shown = render_task(task("ACTIVE", steps, current=2)).splitlines()
    assert shown[1].startswith("    1. A: arm         SUCCEEDED")
    assert shown[2].startswith("  > 2. B: reader      RUNNING")
    assert shown[3].startswith("  > 3. settle: wait   RUNNING")
    assert "(ends 2026-12-01 14:03:05 UTC, " in shown[3] and " left)" in shown[3]
    assert shown[4] == "    4. arm            PENDING"


def test_follow_shows_the_time_a_running_wait_has_left() -> None:
    clock, out = Clock(), Terminal()
    ends = (STARTED + timedelta(seconds=185)).isoformat()
    wait = {
        **step(0, "", "RUNNING", id="settle", started_at=STARTED.isoformat()),
        "node": None,
        "ends_at": ends,
    }
    TaskFollower(out, tty=True, now=clock.now, clock=clock.monotonic).show(task("ACTIVE", [wait]))
    live = "    1. settle: wait   ends 2026-12-01 14:03:05 UTC, 3 min 05 s left"
    assert out.getvalue().endswith(ERASE_LINE + live)


def test_a_protocol_s_longer_step_labels_widen_the_column_for_every_step() -> None:
    from task_scheduler.cli.render import render_task

    steps = [
        step(0, "hotel", "SUCCEEDED", id="fetch"),
        step(1, "reader", "RUNNING", id="read-blank"),
        step(2, None, "PENDING", id="settle"),
    ]
    lines = render_task(task("ACTIVE", steps, current=1)).splitlines()[1:4]

    outcomes = ["SUCCEEDED", "RUNNING", "PENDING"]
    columns = [line.index(outcome) for line, outcome in zip(lines, outcomes, strict=True)]
    assert columns == [len("  > 2. read-blank: reader ")] * 3
