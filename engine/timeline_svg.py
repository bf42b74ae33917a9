"""The timeline's picture: an SVG Gantt chart with one lane per node, and a lane for the tasks' wait
steps, drawn for the width it will be shown at (the lab page asks for its own), so that its text stays
at its size on a narrow screen. A lane is as many rows tall as it needs for bars that overlap: the runs
of a node that runs several steps at once, and the steps of one task (its branches) that overlap on
one node, each get a row of their own instead of hiding each other. Pure: a Timeline in, an SVG string
out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from .timeline import Timeline, TimelineBar, TimelineWaitStep

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
WAITS_NOTE = "thin pale bars: waiting for the node"
WAIT_STEPS_LEGEND = "wait step (no node)"
WAIT_STEPS_LANE = "(wait steps)"  # in parentheses: no node's id, which is written as it is
WIDTH = 1200
MIN_WIDTH = 480
MAX_WIDTH = 4000
LEFT = 150  # the node names
RIGHT = 20
TOP = 40
LANE = 30  # a row of a lane; a lane has as many as its overlapping bars need
MAX_ROWS = 8  # a lane's rows at most: past them, bars share the row that frees first
RUN_HEIGHT = 18
WAIT_HEIGHT = 6
LEGEND_LINE = 18
CHAR_PX = 7.0  # an 11 px sans-serif character, at most about (a digit of DejaVu Sans)
HEADING_CHAR_PX = 8.4  # a 13 px bold one
TICK_GAP_PX = 90  # at least this between two labels of the time axis ("12:03:15" is about 50 px)
TICKS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
FONT = 'font-family="sans-serif" font-size="11"'
HATCH = (
    '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#000" '
    'stroke-opacity="0.35" stroke-width="2"/></pattern></defs>'
)


@dataclass
class Placed:
    """What one row of a lane holds: a step's bars on a node (its wait for it, its run), or a wait step.
    `span` covers all of it; `run` its run (a wait step's whole time counts as one)."""

    task_id: str
    step: int
    start: datetime
    end: datetime
    run: tuple[datetime, datetime] | None
    bars: list[TimelineBar] = field(default_factory=list)
    wait_step: TimelineWaitStep | None = None
    row: int = 0


@dataclass
class Lane:
    """A lane of the picture, from `top`, `rows` rows tall: a node's, or the wait steps' (`waits`)."""

    label: str
    waits: bool
    top: int
    rows: int
    placed: list[Placed]

    @property
    def height(self) -> int:
        return LANE * self.rows


def render_svg(timeline: Timeline, width: int = WIDTH) -> str:
    """The timeline as a standalone SVG `width` pixels wide: a lane per node (and one for the wait steps
    when there are some), a time axis, bars coloured by outcome (waits for the node thin and pale under
    the runs, wait steps hatched and labelled with their step's id), each with a tooltip naming its task;
    a legend under the lanes, on as many lines as the width needs."""
    plot = width - LEFT - RIGHT
    lanes = layout(timeline)
    bottom = lanes[-1].top + lanes[-1].height
    legend = _legend_lines(width, bool(timeline.wait_steps))
    height = bottom + 32 + LEGEND_LINE * len(legend)
    span = max((timeline.until - timeline.since).total_seconds(), 1e-6)
    scale = plot / span
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT}>',
        HATCH,
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        _heading(timeline, width),
        *_lanes(lanes, width),
        *_axis(timeline, scale, bottom, plot),
    ]
    parts.append('<g class="bars">')
    for lane in lanes:
        parts.extend(_drawn(lane, timeline.since, scale))
    parts.append("</g>")
    parts.append(_legend(legend, bottom + 32))
    parts.append("</svg>")
    return "\n".join(parts)


def layout(timeline: Timeline) -> list[Lane]:
    """The lanes top down, each with its bars placed in its rows: the nodes' in the timeline's order,
    then the wait steps' (only when some ran in the window)."""
    by_node: dict[str, dict[tuple[str, int], Placed]] = {node: {} for node in timeline.nodes}
    for bar in timeline.bars:
        steps = by_node.setdefault(bar.node, {})
        key = (bar.task_id, bar.step)
        one = steps.setdefault(key, Placed(bar.task_id, bar.step, bar.start, bar.end, None))
        one.bars.append(bar)
        one.start, one.end = min(one.start, bar.start), max(one.end, bar.end)
        if bar.kind == "run":
            one.run = (bar.start, bar.end)
    groups = [(node, False, list(steps.values())) for node, steps in by_node.items()]
    if timeline.wait_steps:
        waits = [
            Placed(w.task_id, w.step, w.start, w.end, (w.start, w.end), wait_step=w)
            for w in timeline.wait_steps
        ]
        groups.append((WAIT_STEPS_LANE, True, waits))
    lanes: list[Lane] = []
    top = TOP
    for label, is_waits, placed in groups or [("(no steps)", False, [])]:
        lane = Lane(label, is_waits, top, pack(placed), placed)
        lanes.append(lane)
        top += lane.height
    return lanes


def pack(placed: list[Placed]) -> int:
    """Give each its row (the lowest where it hides nothing it should not) and answer how many rows
    that makes (at least one). Two runs that overlap never share a row (a node of capacity 2 runs two
    steps at once), nor do two steps of one task that overlap at all (its branches, one waiting for the
    node while the other runs on it); the waits of different tasks for their node do share a row, thin
    under the runs, as a line of tasks would otherwise make the lane as tall as the line is long."""
    rows: list[list[Placed]] = []
    for item in sorted(placed, key=lambda p: (p.start, p.task_id, p.step)):
        free = next((r for r, row in enumerate(rows) if not any(_clash(item, p) for p in row)), None)
        if free is None and len(rows) < MAX_ROWS:
            rows.append([])
            free = len(rows) - 1
        if free is None:  # crowded: the row whose bars end first
            free = min(range(len(rows)), key=lambda r: max(p.end for p in rows[r]))
        item.row = free
        rows[free].append(item)
    return max(1, len(rows))


def _clash(a: Placed, b: Placed) -> bool:
    if a.task_id == b.task_id:
        return _overlap((a.start, a.end), (b.start, b.end))
    return a.run is not None and b.run is not None and _overlap(a.run, b.run)


def _overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    """Whether two spans share a moment: one that starts inside the other, or both at once (a bar is
    at least a pixel wide, so two that start together would cover each other)."""
    return a[0] == b[0] or max(a[0], b[0]) < min(a[1], b[1])


def _drawn(lane: Lane, since: datetime, scale: float) -> list[str]:
    """A lane's bars, each in its row: waits for the node first, so that runs are drawn over them."""
    if lane.waits:
        waits = [(p.wait_step, lane.top + p.row * LANE) for p in lane.placed if p.wait_step]
        return [_wait_step_bar(wait, since, scale, top) for wait, top in waits]
    bars = [(bar, lane.top + p.row * LANE) for p in lane.placed for bar in p.bars]
    bars.sort(key=lambda b: (b[0].kind == "run", b[0].start))
    return [_bar(bar, since, scale, top) for bar, top in bars]


def _counted(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _heading(timeline: Timeline, width: int) -> str:
    runs = sum(b.kind == "run" for b in timeline.bars)
    waits = f"{_counted(len(timeline.wait_steps), 'wait step')}, " if timeline.wait_steps else ""
    text = (
        f"{_counted(timeline.tasks, 'task')}, {_counted(runs, 'step run')}, {waits}"
        f"{_stamp(timeline.since)} to {_stamp(timeline.until)} UTC"
        + (" (truncated: more tasks than shown)" if timeline.truncated else "")
        + (f" ({_counted(timeline.unread, 'task')} unread: no answer)" if timeline.unread else "")
    )
    x = LEFT if LEFT + len(text) * HEADING_CHAR_PX <= width - RIGHT else 8
    return f'<text x="{x}" y="18" font-size="13" font-weight="bold">{escape(text)}</text>'


def _lanes(lanes: Sequence[Lane], width: int) -> list[str]:
    parts = []
    for i, lane in enumerate(lanes):
        fill = "#f4f6f8" if i % 2 == 0 else "#ffffff"
        parts.append(
            f'<rect class="lane" x="{LEFT}" y="{lane.top}" width="{width - LEFT - RIGHT}" '
            f'height="{lane.height}" fill="{fill}"/>'
        )
        name = lane.label
        label = name if len(name) * CHAR_PX < LEFT - 12 else name[: int((LEFT - 12) / CHAR_PX) - 1] + "…"
        kind = 'class="wait-steps" font-style="italic"' if lane.waits else 'class="node"'
        parts.append(
            f'<text {kind} x="{LEFT - 6}" y="{lane.top + LANE / 2 + 4}" text-anchor="end">'
            f"{escape(label)}<title>{escape(name)}</title></text>"
        )
    return parts


def _tick_step(span: float, plot: float) -> float:
    """The time between two ticks: the shortest of TICKS_S that leaves TICK_GAP_PX between labels."""
    most = max(2, int(plot / TICK_GAP_PX))
    longest = TICKS_S[-1] * max(1, int(span / TICKS_S[-1] / most))
    return next((t for t in TICKS_S if span / t <= most), longest)


def _axis(timeline: Timeline, scale: float, bottom: int, plot: float) -> list[str]:
    span = (timeline.until - timeline.since).total_seconds()
    step = _tick_step(span, plot)
    parts = [f'<line x1="{LEFT}" y1="{bottom}" x2="{LEFT + span * scale:.1f}" y2="{bottom}" stroke="#555"/>']
    moment, last = (timeline.since.timestamp() // step + 1) * step, timeline.until.timestamp()
    while moment <= last:  # in seconds: a datetime past the year 9999 cannot be made
        tick = datetime.fromtimestamp(moment, UTC)
        x = LEFT + (tick - timeline.since).total_seconds() * scale
        parts.append(
            f'<line class="tick" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom + 4}" '
            'stroke="#ccc" stroke-width="0.5"/>'
        )
        label = _tick_label(tick, step)
        # A label too close to the right edge ends at its tick instead of centring on it.
        anchor = "end" if x + len(label) * CHAR_PX / 2 > LEFT + plot + RIGHT else "middle"
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="{anchor}">{label}</text>')
        moment += step
    return parts


def _tick_label(tick: datetime, step: float) -> str:
    if step < 60:
        return tick.strftime("%H:%M:%S")
    if step < 86400:
        return tick.strftime("%H:%M")
    return tick.strftime("%m-%d" if step < 30 * 86400 else "%Y-%m-%d")


def _bar(bar: TimelineBar, since: datetime, scale: float, row_top: int) -> str:
    x = LEFT + (bar.start - since).total_seconds() * scale
    w = max((bar.end - bar.start).total_seconds() * scale, 1.0)
    if bar.kind == "wait":
        y, h, extra = row_top + LANE - WAIT_HEIGHT - 2.0, WAIT_HEIGHT, ' fill-opacity="0.55"'
    else:
        y, h, extra = (
            row_top + (LANE - RUN_HEIGHT) / 2 - 2,
            RUN_HEIGHT,
            ' stroke="#ffffff" stroke-width="0.5"' if w >= 4 else "",  # a thin bar keeps its colour
        )
    what = "waited" if bar.kind == "wait" else bar.outcome
    tip = (
        f"{bar.task_id} step {_step_name(bar.step, bar.step_id)} on {bar.node}: {what}, "
        f"{_stamp(bar.start)} to {'(ongoing)' if bar.ongoing else _stamp(bar.end)}"
    )
    rect = (
        f'<rect class="{bar.kind} {bar.outcome.lower()}" x="{x:.2f}" y="{y:.1f}" width="{w:.2f}" '
        f'height="{h}" fill="{COLOURS.get(bar.outcome, "#999")}"{extra}/>'
    )
    label = ""
    if bar.kind == "run":
        # Its task, and which of its steps (branches of one task run side by side), as far as it fits.
        text = next((t for t in _run_labels(bar) if len(t) * CHAR_PX + 6 <= w), None)
        if text is not None:
            label = _bar_text(x, y, text, "#fff")
    return f"<g><title>{escape(tip)}</title>{rect}{label}</g>"


def _run_labels(bar: TimelineBar) -> list[str]:
    return [f"{bar.task_id} · {bar.step_id}", bar.task_id] if bar.step_id else [bar.task_id]


def _wait_step_bar(wait: TimelineWaitStep, since: datetime, scale: float, row_top: int) -> str:
    """A wait step: a pale bar of its outcome's colour, hatched, with its step's id written on it
    where it fits."""
    x = LEFT + (wait.start - since).total_seconds() * scale
    w = max((wait.end - wait.start).total_seconds() * scale, 1.0)
    y = row_top + (LANE - RUN_HEIGHT) / 2 - 2
    colour = COLOURS.get(wait.outcome, "#999")
    ends = f", its time {'comes' if wait.ongoing else 'came'} {_stamp(wait.ends_at)}" if wait.ends_at else ""
    tip = (
        f"{wait.task_id} wait step {_step_name(wait.step, wait.step_id)}: {wait.outcome}, "
        f"{_stamp(wait.start)} to {'(ongoing)' if wait.ongoing else _stamp(wait.end)}{ends}"
    )
    shape = (
        f'<rect class="wait-step {wait.outcome.lower()}" x="{x:.2f}" y="{y:.1f}" width="{w:.2f}" '
        f'height="{RUN_HEIGHT}" fill="{colour}" fill-opacity="0.35" stroke="{colour}" stroke-width="1"/>'
        f'<rect x="{x:.2f}" y="{y:.1f}" width="{w:.2f}" height="{RUN_HEIGHT}" fill="url(#hatch)"/>'
    )
    label = ""
    if len(wait.step_id) * CHAR_PX + 6 <= w:
        label = _bar_text(x, y, wait.step_id, "#222")
    return f"<g><title>{escape(tip)}</title>{shape}{label}</g>"


def _bar_text(x: float, y: float, text: str, colour: str) -> str:
    """Text written on a bar of RUN_HEIGHT from its left end."""
    return f'<text x="{x + 3:.1f}" y="{y + RUN_HEIGHT / 2 + 4:.1f}" fill="{colour}">{escape(text)}</text>'


def _step_name(index: int, step_id: str) -> str:
    """`2` for a step known by its number, `uv (3)` for one with an id of its own."""
    number = str(index + 1)
    return number if step_id in ("", number) else f"{step_id} ({number})"


LegendItem = tuple[str | None, str, float]  # its swatch (a colour, HATCHED, None: a note), text, width in px
HATCHED = "hatched"


def _legend_lines(width: int, wait_steps: bool = False) -> list[list[LegendItem]]:
    """The legend's items, a line each time the next would pass the right edge; the wait steps' only
    when the picture has some."""
    items: list[LegendItem] = [(COLOURS[o], o.lower(), 16 + len(o) * CHAR_PX + 14) for o in LEGEND]
    items.append((None, WAITS_NOTE, len(WAITS_NOTE) * CHAR_PX + 14))
    if wait_steps:
        items.append((HATCHED, WAIT_STEPS_LEGEND, 16 + len(WAIT_STEPS_LEGEND) * CHAR_PX))
    lines: list[list[LegendItem]] = [[]]
    x = float(LEFT)
    for item in items:
        if lines[-1] and x + item[2] > width - RIGHT:
            lines.append([])
            x = float(LEFT)
        lines[-1].append(item)
        x += item[2]
    return lines


def _legend(lines: list[list[LegendItem]], y: int) -> str:
    parts = []
    for i, line in enumerate(lines):
        x, base = float(LEFT), y + i * LEGEND_LINE
        for swatch, text, item_w in line:
            if swatch is None:
                parts.append(f'<text x="{x:.0f}" y="{base}" fill="#555">{escape(text)}</text>')
            else:
                fill = (
                    'fill="#999" fill-opacity="0.35" stroke="#999"/>'
                    f'<rect x="{x:.0f}" y="{base - 9}" width="12" height="10" fill="url(#hatch)"'
                    if swatch == HATCHED
                    else f"fill={quoteattr(swatch)}"
                )
                parts.append(
                    f'<rect x="{x:.0f}" y="{base - 9}" width="12" height="10" {fill}/>'
                    f'<text x="{x + 16:.0f}" y="{base}">{escape(text)}</text>'
                )
            x += item_w
    return '<g class="legend">' + "".join(parts) + "</g>"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
