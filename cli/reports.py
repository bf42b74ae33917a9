"""`timeline` and `stats`: what the lab did, as an SVG picture or as tables."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from ..engine.timeline import window
from .options import add_client_arguments, api_client
from .render import render_stats, utc_text


def cmd_timeline(args: argparse.Namespace) -> int:
    """Write the lab's timeline (GET /timeline.svg) to --out; relative times are from this PC's clock."""
    since, until = window(args.since, args.until, datetime.now(UTC))
    params = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "node": args.node,
        "workflow": args.workflow,
    }
    response = api_client(args).send("GET", "/timeline.svg", params={k: v for k, v in params.items() if v})
    out = Path(args.out)
    out.write_text(response.text, encoding="utf-8")
    print(f"wrote {out}: the timeline from {utc_text(since.isoformat())} to {utc_text(until.isoformat())}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Print the lab's statistics (GET /stats) as tables, or as JSON with --json."""
    since, until = window(args.since, args.until, datetime.now(UTC), default="7d")
    stats = api_client(args).get("/stats", since=since.isoformat(), until=until.isoformat())
    print(json.dumps(stats, indent=2) if args.json else render_stats(stats))
    return 0


def add_report_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`timeline --since 2h --out lab.svg` (the Gantt chart of tasks on nodes, as an SVG file), and
    `stats --since 7d [--json]` (per node calls, outcomes and times; per workflow tasks; per week)."""
    timeline = commands.add_parser("timeline", help="draw the lab's timeline (tasks on nodes) as an SVG file")
    timeline.add_argument(
        "--since", default="2h", help="ISO time or a duration back (30m, 2h, 1d); default 2h"
    )
    timeline.add_argument("--until", help="ISO time or a duration back; default now")
    timeline.add_argument("--node", help="only this node's lane")
    timeline.add_argument("--workflow", help="only tasks of this lab workflow")
    timeline.add_argument(
        "--out", default="timeline.svg", help="the SVG file to write (default timeline.svg)"
    )
    add_client_arguments(timeline)
    timeline.set_defaults(handler=cmd_timeline)

    stats = commands.add_parser("stats", help="the lab's statistics: nodes, workflows, tasks per week")
    stats.add_argument("--since", default="7d", help="ISO time or a duration back (2h, 7d, 4w); default 7d")
    stats.add_argument("--until", help="ISO time or a duration back; default now")
    stats.add_argument("--json", action="store_true", help="print the API's JSON answer")
    add_client_arguments(stats)
    stats.set_defaults(handler=cmd_stats)
