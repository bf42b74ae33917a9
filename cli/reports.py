"""`timeline` and `stats`: what the lab did, as an SVG picture or as tables."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from ..engine.errors import TaskSchedulerError
from ..engine.timeline import FIT, FIT_WITHIN, fits, window
from .options import add_client_arguments, api_client, dev_state
from .render import render_stats, utc_text

STDOUT = "-"
TIMELINE_FILE = "timeline.svg"


def cmd_timeline(args: argparse.Namespace) -> int:
    """Write the lab's timeline (GET /timeline.svg) where --out says, else into the dev stack's state
    folder (else a temporary file), and say where; `--out -` prints it. Relative times are from this PC's
    clock; without --since the API fits the window to the steps it shows."""
    fitted = fits(args.since)
    since, until = window(FIT_WITHIN if fitted else args.since, args.until, datetime.now(UTC))
    params = {
        "since": FIT if fitted else since.isoformat(),
        "until": until.isoformat(),
        "node": args.node,
        "workflow": args.workflow,
    }
    response = api_client(args).send("GET", "/timeline.svg", params={k: v for k, v in params.items() if v})
    if args.out == STDOUT:
        sys.stdout.write(response.text)
        return 0
    out = _write(Path(args.out) if args.out else _default_out(args), response.text)
    window_text = f"from {utc_text(since.isoformat())} to {utc_text(until.isoformat())}"
    what = f"the steps {window_text}, the picture from the first" if fitted else f"the timeline {window_text}"
    print(f"wrote {out}: {what} (open it in a web browser)")
    return 0


def _default_out(args: argparse.Namespace) -> Path:
    """timeline.svg in the dev stack's state folder (`.task-scheduler/`, which git ignores), else a new
    temporary file: never the current folder, which may be a repository's."""
    found = dev_state(args).state_dir
    if found is not None and found.is_dir():
        return found / TIMELINE_FILE
    handle, name = tempfile.mkstemp(prefix="task-scheduler-timeline-", suffix=".svg")
    os.close(handle)
    return Path(name)


def _write(out: Path, text: str) -> Path:
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise TaskSchedulerError(
            f"cannot write the timeline to {out}: {exc.strerror or exc}; give another file with --out FILE, "
            "or --out - to print it"
        ) from None
    return out.resolve()


def cmd_stats(args: argparse.Namespace) -> int:
    """Print the lab's statistics (GET /stats) as tables, or as JSON with --json."""
    since, until = window(args.since, args.until, datetime.now(UTC), default="7d")
    stats = api_client(args).get("/stats", since=since.isoformat(), until=until.isoformat())
    print(json.dumps(stats, indent=2) if args.json else render_stats(stats))
    return 0


def add_report_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`timeline [--since 2h] [-o lab.svg]` (the Gantt chart of tasks on nodes, as an SVG file), and
    `stats --since 7d [--json]` (per node calls, outcomes and times; per workflow tasks; per week)."""
    timeline = commands.add_parser("timeline", help="draw the lab's timeline (tasks on nodes) as an SVG file")
    timeline.add_argument(
        "--since",
        help="ISO time or a duration back (30m, 2h, 1d); default: from the first step of the last 2 h "
        "(at least 1 min)",
    )
    timeline.add_argument("--until", help="ISO time or a duration back; default now")
    timeline.add_argument("--node", help="only this node's lane")
    timeline.add_argument("--workflow", help="only tasks of this lab workflow")
    timeline.add_argument(
        "--out",
        "-o",
        metavar="FILE",
        help="the SVG file to write, or - to print it; default timeline.svg in the dev stack's state "
        "folder (.task-scheduler/), else a temporary file; the path written is printed",
    )
    add_client_arguments(timeline)
    timeline.set_defaults(handler=cmd_timeline)

    stats = commands.add_parser("stats", help="the lab's statistics: nodes, workflows, tasks per week")
    stats.add_argument("--since", default="7d", help="ISO time or a duration back (2h, 7d, 4w); default 7d")
    stats.add_argument("--until", help="ISO time or a duration back; default now")
    stats.add_argument("--json", action="store_true", help="print the API's JSON answer")
    add_client_arguments(stats)
    stats.set_defaults(handler=cmd_stats)
