"""What `task wait` and `task start --wait` print while they follow a task: the task as it is, then one
line per change (a step that began or ended, the task's state, a reason, an operator's decision). On a
terminal, a last line shows how long the running step has been running, rewritten in place at most once
a second and erased before the next change is printed."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from .render import (
    duration_text,
    label_width,
    render_decision,
    render_step,
    render_task,
    step_label,
    task_header,
    wait_left_text,
)

Task = dict[str, Any]
ERASE_LINE = "\r\x1b[K"  # back to the line's start, and clear it
LIVE_EVERY_S = 1.0


class TaskFollower:
    """Prints a followed task to `out`: `show` with each answer of the API, `close` once it is over."""

    def __init__(
        self,
        out: TextIO,
        tty: bool,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.tty = tty
        self.now = now
        self.clock = clock
        self.last: Task | None = None
        self.changed = False  # a change was printed after the first view
        self.live: str | None = None  # the line rewritten in place, while one is on the screen
        self.live_at = -math.inf

    def show(self, task: Task) -> None:
        """Print what changed since the last answer (the whole task the first time)."""
        lines = [render_task(task)] if self.last is None else changes(self.last, task)
        if lines:
            self._erase_live()
            self.out.write("".join(f"{line}\n" for line in lines))
            self.changed |= self.last is not None
        self.last = task
        if self.tty:
            self._show_live(task)
        self.out.flush()

    def close(self) -> None:
        """Erase the live line; end with the Temporal UI link if changes pushed the first view's away."""
        self._erase_live()
        if self.changed and self.last is not None and self.last.get("ui_url"):
            self.out.write(f"  Temporal UI: {self.last['ui_url']}\n")
        self.out.flush()

    def _show_live(self, task: Task) -> None:
        step = running_step(task)
        if step is None:
            self._erase_live()
            return
        due = self.clock() - self.live_at >= LIVE_EVERY_S
        if self.live is None or due:
            elapsed_s = (self.now() - datetime.fromisoformat(step["started_at"])).total_seconds()
            doing = (
                wait_left_text(step, self.now())
                if step.get("ends_at")
                else f"running for {duration_text(elapsed_s)}"
            )
            # In the steps' columns, below the step's own line.
            self.live = f"    {step['index'] + 1}. {step_label(step):<{label_width(task)}} {doing}"
            self.out.write(ERASE_LINE + self.live)
            self.live_at = self.clock()

    def _erase_live(self) -> None:
        if self.live is not None:
            self.out.write(ERASE_LINE)
            self.live = None


def changes(before: Task, after: Task) -> list[str]:
    """One line per change: each step whose outcome (or place in its node's line) changed, the task's
    state, a new reason, each new decision."""
    known = {step["index"]: step for step in before.get("steps", [])}
    lines = []
    for step in after.get("steps", []):
        prior = known.get(step["index"])
        if prior is None and step["outcome"] == "PENDING":
            continue  # a step not begun, come into the window of steps the API shows
        if prior is None or _view(prior) != _view(step):
            lines.append("  " + render_step(step, width=label_width(after)))
    if after["state"] != before["state"]:
        lines.append(task_header(after))
    if after.get("reason") and after.get("reason") != before.get("reason"):
        lines.append(f"  reason: {after['reason']}")
    lines += [render_decision(d) for d in after.get("decisions", [])[len(before.get("decisions", [])) :]]
    return lines


def running_step(task: Task) -> dict[str, Any] | None:
    return next(
        (
            step
            for step in task.get("steps", [])
            if step["outcome"] == "RUNNING" and step.get("started_at") and not step.get("finished_at")
        ),
        None,
    )


def _view(step: dict[str, Any]) -> tuple[Any, ...]:
    return step["outcome"], step.get("waiting_position")
