"""The lab's timeline: which task ran which step on which node, when, and how it ended; and its picture,
an SVG Gantt chart with one lane per node. Pure: step records in, a model and an SVG string out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

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


def window(
    since: str | None, until: str | None, now: datetime, default: str = "2h"
) -> tuple[datetime, datetime]:
    """The [since, until) window asked for; since defaults to 2 h back, until to now."""
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
    node: str
    kind: Kind
    outcome: str = Field(description="SUCCEEDED, FAILED, LOST, RUNNING, WAITING, SKIPPED or CANCELLED")
    start: datetime
    end: datetime
    ongoing: bool = Field(default=False, description="not over at `until`: `end` is the window's end")


class TaskSteps(BaseModel):
    """A task and its step records, as the timeline reads them."""

    task_id: str
    workflow_name: str | None = None
    steps: Sequence[StepRecord]


class Timeline(BaseModel):
    since: datetime
    until: datetime
    nodes: list[str] = Field(description="one lane each, in the lab's order")
    tasks: int = Field(description="how many tasks have a bar in the window")
    truncated: bool = Field(default=False, description="more tasks were in the window than were read")
    unread: int = Field(default=0, description="tasks in the window whose steps did not answer in time")
    bars: list[TimelineBar]


def build_timeline(
    tasks: Iterable[TaskSteps],
    since: datetime,
    until: datetime,
    nodes: Sequence[str] = (),
    truncated: bool = False,
) -> Timeline:
    """Bars of every step that waited or ran in [since, until), clipped to it. `nodes`: the lanes in
    order (a node met in the records but not named gets a lane after them)."""
    bars = [bar for task in tasks for step in task.steps for bar in _step_bars(task, step, since, until)]
    bars.sort(key=lambda b: (b.start, b.task_id, b.step, b.kind))
    lanes = list(dict.fromkeys([*nodes, *(b.node for b in bars)]))
    return Timeline(
        since=since,
        until=until,
        nodes=lanes,
        tasks=len({b.task_id for b in bars}),
        truncated=truncated,
        bars=bars,
    )


def _step_bars(task: TaskSteps, step: StepRecord, since: datetime, until: datetime) -> list[TimelineBar]:
    if step.requested_at is None and step.started_at is None:
        return []  # never reached its node
    spans: list[tuple[Kind, str, datetime, datetime | None]] = []
    if step.requested_at is not None and (step.started_at is None or step.started_at > step.requested_at):
        waited_until = step.started_at or (step.finished_at if step.finished_at else None)
        spans.append(("wait", StepOutcome.WAITING.value, step.requested_at, waited_until))
    if step.started_at is not None:
        spans.append(("run", _run_outcome(step), step.started_at, step.finished_at))
    bars = []
    for kind, outcome, start, end in spans:
        ongoing = end is None
        lo, hi = max(start, since), min(end or until, until)
        if hi <= lo and not (lo == hi and since <= lo < until):
            continue
        bars.append(
            TimelineBar(
                task_id=task.task_id,
                workflow_name=task.workflow_name,
                step=step.index,
                node=step.node,
                kind=kind,
                outcome=outcome,
                start=lo,
                end=hi,
                ongoing=ongoing or (end is not None and end > until),
            )
        )
    return bars


def _run_outcome(step: StepRecord) -> str:
    if step.finished_at is None and step.outcome in (StepOutcome.PENDING, StepOutcome.WAITING):
        return StepOutcome.RUNNING.value
    return step.outcome.value


# --- the picture -------------------------------------------------------------------------------------

COLOURS = {
    "SUCCEEDED": "#2e9d4f",
    "FAILED": "#d62828",
    "LOST": "#8e44ad",
    "RUNNING": "#1f6fd1",
    "WAITING": "#f2b84b",
    "CANCELLED": "#7f7f7f",
    "SKIPPED": "#b0b0b0",
}
LEGEND = ["SUCCEEDED", "FAILED", "LOST", "RUNNING", "WAITING", "CANCELLED", "SKIPPED"]
WIDTH = 1200
LEFT = 150  # the node names
RIGHT = 20
TOP = 40
LANE = 30
RUN_HEIGHT = 18
WAIT_HEIGHT = 6
CHAR_PX = 6.2  # an 11 px sans-serif character, about
TICKS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
FONT = 'font-family="sans-serif" font-size="11"'


def render_svg(timeline: Timeline, width: int = WIDTH) -> str:
    """The timeline as a standalone SVG: a lane per node, a time axis, bars coloured by outcome (waits
    thin and pale under the runs), each with a tooltip naming its task; a legend under the lanes."""
    plot = width - LEFT - RIGHT
    lanes = timeline.nodes or ["(no steps)"]
    height = TOP + LANE * len(lanes) + 60
    span = max((timeline.until - timeline.since).total_seconds(), 1e-6)
    scale = plot / span
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT}>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        _heading(timeline),
        *_lanes(lanes, width),
        *_axis(timeline, scale, len(lanes)),
    ]
    row = {node: i for i, node in enumerate(lanes)}
    parts.append('<g class="bars">')
    parts.extend(_bar(bar, timeline.since, scale, row[bar.node]) for bar in _drawing_order(timeline.bars))
    parts.append("</g>")
    parts.append(_legend(TOP + LANE * len(lanes) + 32))
    parts.append("</svg>")
    return "\n".join(parts)


def _drawing_order(bars: Sequence[TimelineBar]) -> list[TimelineBar]:
    return sorted(bars, key=lambda b: (b.kind == "run", b.start))  # waits first: runs are drawn on top


def _heading(timeline: Timeline) -> str:
    text = (
        f"{timeline.tasks} tasks, {sum(b.kind == 'run' for b in timeline.bars)} step runs, "
        f"{_stamp(timeline.since)} to {_stamp(timeline.until)} UTC"
        + (" (truncated: more tasks than shown)" if timeline.truncated else "")
        + (f" ({timeline.unread} tasks unread: no answer)" if timeline.unread else "")
    )
    return f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold">{escape(text)}</text>'


def _lanes(lanes: Sequence[str], width: int) -> list[str]:
    parts = []
    for i, node in enumerate(lanes):
        y = TOP + i * LANE
        fill = "#f4f6f8" if i % 2 == 0 else "#ffffff"
        parts.append(
            f'<rect class="lane" x="{LEFT}" y="{y}" width="{width - LEFT - RIGHT}" height="{LANE}" '
            f'fill="{fill}"/>'
        )
        label = node if len(node) * CHAR_PX < LEFT - 12 else node[: int((LEFT - 12) / CHAR_PX) - 1] + "…"
        parts.append(
            f'<text class="node" x="{LEFT - 6}" y="{y + LANE / 2 + 4}" text-anchor="end">'
            f"{escape(label)}<title>{escape(node)}</title></text>"
        )
    return parts


def _axis(timeline: Timeline, scale: float, lanes: int) -> list[str]:
    span = (timeline.until - timeline.since).total_seconds()
    step = next((t for t in TICKS_S if span / t <= 10), TICKS_S[-1] * max(1, int(span / TICKS_S[-1] / 10)))
    bottom = TOP + lanes * LANE
    parts = [f'<line x1="{LEFT}" y1="{bottom}" x2="{LEFT + span * scale:.1f}" y2="{bottom}" stroke="#555"/>']
    moment, last = (timeline.since.timestamp() // step + 1) * step, timeline.until.timestamp()
    while moment <= last:  # in seconds: a datetime past the year 9999 cannot be made
        tick = datetime.fromtimestamp(moment, UTC)
        x = LEFT + (tick - timeline.since).total_seconds() * scale
        parts.append(
            f'<line class="tick" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom + 4}" '
            'stroke="#ccc" stroke-width="0.5"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{_tick_label(tick, step)}</text>'
        )
        moment += step
    return parts


def _tick_label(tick: datetime, step: float) -> str:
    if step < 60:
        return tick.strftime("%H:%M:%S")
    if step < 86400:
        return tick.strftime("%H:%M")
    return tick.strftime("%m-%d" if step < 30 * 86400 else "%Y-%m-%d")


def _bar(bar: TimelineBar, since: datetime, scale: float, row: int) -> str:
    x = LEFT + (bar.start - since).total_seconds() * scale
    w = max((bar.end - bar.start).total_seconds() * scale, 1.0)
    lane_top = float(TOP + row * LANE)
    if bar.kind == "wait":
        y, h, extra = lane_top + LANE - WAIT_HEIGHT - 2, WAIT_HEIGHT, ' fill-opacity="0.55"'
    else:
        y, h, extra = (
            lane_top + (LANE - RUN_HEIGHT) / 2 - 2,
            RUN_HEIGHT,
            ' stroke="#ffffff" stroke-width="0.5"' if w >= 4 else "",  # a thin bar keeps its colour
        )
    what = "waited" if bar.kind == "wait" else bar.outcome
    tip = (
        f"{bar.task_id} step {bar.step + 1} on {bar.node}: {what}, "
        f"{_stamp(bar.start)} to {'(ongoing)' if bar.ongoing else _stamp(bar.end)}"
    )
    rect = (
        f'<rect class="{bar.kind} {bar.outcome.lower()}" x="{x:.2f}" y="{y:.1f}" width="{w:.2f}" '
        f'height="{h}" fill="{COLOURS.get(bar.outcome, "#999")}"{extra}/>'
    )
    label = ""
    if bar.kind == "run" and len(bar.task_id) * CHAR_PX + 6 <= w:
        text_y = y + RUN_HEIGHT / 2 + 4
        label = f'<text x="{x + 3:.1f}" y="{text_y:.1f}" fill="#fff">{escape(bar.task_id)}</text>'
    return f"<g><title>{escape(tip)}</title>{rect}{label}</g>"


def _legend(y: int) -> str:
    items, x = [], LEFT
    for outcome in LEGEND:
        items.append(
            f'<rect x="{x}" y="{y - 9}" width="12" height="10" fill={quoteattr(COLOURS[outcome])}/>'
            f'<text x="{x + 16}" y="{y}">{outcome.lower()}</text>'
        )
        x += 24 + int(len(outcome) * CHAR_PX) + 10
    items.append(f'<text x="{x}" y="{y}" fill="#555">thin pale bars: waiting for the node</text>')
    return '<g class="legend">' + "".join(items) + "</g>"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
