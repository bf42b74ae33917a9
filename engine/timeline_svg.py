"""The timeline's picture: an SVG Gantt chart with one lane per node, drawn for the width it will be shown
at (the lab page asks for its own), so that its text stays at its size on a narrow screen. Pure: a
Timeline in, an SVG string out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from .timeline import Timeline, TimelineBar

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
WIDTH = 1200
MIN_WIDTH = 480
MAX_WIDTH = 4000
LEFT = 150  # the node names
RIGHT = 20
TOP = 40
LANE = 30
RUN_HEIGHT = 18
WAIT_HEIGHT = 6
LEGEND_LINE = 18
CHAR_PX = 7.0  # an 11 px sans-serif character, at most about (a digit of DejaVu Sans)
HEADING_CHAR_PX = 8.4  # a 13 px bold one
TICK_GAP_PX = 90  # at least this between two labels of the time axis ("12:03:15" is about 50 px)
TICKS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
FONT = 'font-family="sans-serif" font-size="11"'


def render_svg(timeline: Timeline, width: int = WIDTH) -> str:
    """The timeline as a standalone SVG `width` pixels wide: a lane per node, a time axis, bars coloured
    by outcome (waits thin and pale under the runs), each with a tooltip naming its task; a legend under
    the lanes, on as many lines as the width needs."""
    plot = width - LEFT - RIGHT
    lanes = timeline.nodes or ["(no steps)"]
    bottom = TOP + LANE * len(lanes)
    legend = _legend_lines(width)
    height = bottom + 32 + LEGEND_LINE * len(legend)
    span = max((timeline.until - timeline.since).total_seconds(), 1e-6)
    scale = plot / span
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT}>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        _heading(timeline, width),
        *_lanes(lanes, width),
        *_axis(timeline, scale, len(lanes), plot),
    ]
    row = {node: i for i, node in enumerate(lanes)}
    parts.append('<g class="bars">')
    parts.extend(_bar(bar, timeline.since, scale, row[bar.node]) for bar in _drawing_order(timeline.bars))
    parts.append("</g>")
    parts.append(_legend(legend, bottom + 32))
    parts.append("</svg>")
    return "\n".join(parts)


def _drawing_order(bars: Sequence[TimelineBar]) -> list[TimelineBar]:
    return sorted(bars, key=lambda b: (b.kind == "run", b.start))  # waits first: runs are drawn on top


def _counted(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _heading(timeline: Timeline, width: int) -> str:
    runs = sum(b.kind == "run" for b in timeline.bars)
    text = (
        f"{_counted(timeline.tasks, 'task')}, {_counted(runs, 'step run')}, "
        f"{_stamp(timeline.since)} to {_stamp(timeline.until)} UTC"
        + (" (truncated: more tasks than shown)" if timeline.truncated else "")
        + (f" ({_counted(timeline.unread, 'task')} unread: no answer)" if timeline.unread else "")
    )
    x = LEFT if LEFT + len(text) * HEADING_CHAR_PX <= width - RIGHT else 8
    return f'<text x="{x}" y="18" font-size="13" font-weight="bold">{escape(text)}</text>'


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


def _tick_step(span: float, plot: float) -> float:
    """The time between two ticks: the shortest of TICKS_S that leaves TICK_GAP_PX between labels."""
    most = max(2, int(plot / TICK_GAP_PX))
    longest = TICKS_S[-1] * max(1, int(span / TICKS_S[-1] / most))
    return next((t for t in TICKS_S if span / t <= most), longest)


def _axis(timeline: Timeline, scale: float, lanes: int, plot: float) -> list[str]:
    span = (timeline.until - timeline.since).total_seconds()
    step = _tick_step(span, plot)
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


LegendItem = tuple[str | None, str, float]  # its colour (None: a note), its text, its width in px


def _legend_lines(width: int) -> list[list[LegendItem]]:
    """The legend's items, a line each time the next would pass the right edge."""
    items: list[LegendItem] = [(COLOURS[o], o.lower(), 16 + len(o) * CHAR_PX + 14) for o in LEGEND]
    items.append((None, WAITS_NOTE, len(WAITS_NOTE) * CHAR_PX))
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
        for colour, text, item_w in line:
            if colour is None:
                parts.append(f'<text x="{x:.0f}" y="{base}" fill="#555">{escape(text)}</text>')
            else:
                parts.append(
                    f'<rect x="{x:.0f}" y="{base - 9}" width="12" height="10" fill={quoteattr(colour)}/>'
                    f'<text x="{x + 16:.0f}" y="{base}">{escape(text)}</text>'
                )
            x += item_w
    return '<g class="legend">' + "".join(parts) + "</g>"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
