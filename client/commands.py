"""The CLI's client commands (`task ...`, `node ...`, `workers`): thin wrappers over the HTTP API."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..engine.errors import TaskSchedulerError
from ..engine.timeline import window
from .http import ApiClient, render_task

DEFAULT_STATE_DIR = ".task-scheduler"


def read_file(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def api_client(args: argparse.Namespace) -> ApiClient:
    token = args.token or os.environ.get("TASK_SCHEDULER_TOKEN") or read_file(Path(args.state_dir) / "token")
    return ApiClient(args.api, token)


def cmd_task(args: argparse.Namespace) -> int:
    api = api_client(args)
    action = TASK_ACTIONS.get(args.action, _task_command)
    return action(api, args)


def _start(api: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "workflow_name": args.workflow,
        "args": _task_args(args.args),
        "priority": args.priority,
    }
    if args.id:
        body["id"] = args.id
    task = api.post("/tasks", body)
    print(f"started {task['task_id']}")
    return _follow(api, task["task_id"]) if args.wait else 0


def _list(api: ApiClient, args: argparse.Namespace) -> int:
    for task in api.get("/tasks", state=args.state, workflow_name=args.workflow, node=args.node)["tasks"]:
        print(
            f"{task['task_id']:<40} {task['workflow_name'] or '-':<18} {task['state'] or '-':<10} "
            f"{task['current_node'] or '':<12} {task['temporal_status']}"
        )
    return 0


def _show(api: ApiClient, args: argparse.Namespace) -> int:
    print(render_task(api.get(f"/tasks/{args.task_id}")))
    return 0


def _task_command(api: ApiClient, args: argparse.Namespace) -> int:
    """pause, continue, cancel."""
    body = {
        "continue": {"mode": getattr(args, "mode", None), "reason": getattr(args, "reason", None)},
        "cancel": {"reason": getattr(args, "reason", None)},
    }
    print(render_task(api.post(f"/tasks/{args.task_id}/{args.action}", body.get(args.action))))
    return 0


TASK_ACTIONS = {
    "start": _start,
    "list": _list,
    "show": _show,
    "wait": lambda api, args: _follow(api, args.task_id),
}


def _task_args(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskSchedulerError(
            f'--args is not valid JSON ({exc}); e.g. --args \'{{"plate": "P1"}}\''
        ) from exc
    if not isinstance(value, dict):
        raise TaskSchedulerError(f'--args must be a JSON object, e.g. \'{{"plate": "P1"}}\'; got {text}')
    return value


def _follow(api: ApiClient, task_id: str) -> int:
    task = api.follow(task_id, lambda t: print(render_task(t), flush=True))
    if task["state"] == "ERROR":
        print(f"the task waits for an operator: task-scheduler task continue {task_id} [--mode next]")
    return 0 if task["state"] == "FINISHED" else 1


def cmd_node(args: argparse.Namespace) -> int:
    api = api_client(args)
    nodes = [api.post(f"/nodes/{args.node_id}/restart")] if args.action == "restart" else api.get("/nodes")
    for node in nodes:
        holder = node["holder"]["key"]["task_id"] if node.get("holder") else "-"
        online = "online" if node.get("online", node["hosted"]) else "OFFLINE"
        worker = node.get("worker") or "-"
        print(
            f"{node['id']:<14} {node['state'] or '?':<10} {online:<8} worker: {worker:<10} "
            f"holder: {holder:<30} waiting: {len(node['waiting_tasks'])}  {node.get('reason') or ''}"
        )
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    for worker in api_client(args).get("/workers"):
        print(render_worker(worker))
    return 0


def render_worker(worker: dict[str, Any]) -> str:
    """`pc-2  lab-pc-2  OFFLINE since 2026-12-01 21:30:05 UTC  nodes: b1, b2`."""
    if worker["online"]:
        status = "online"
    else:
        since = worker.get("offline_since") or worker.get("last_seen")
        status = f"OFFLINE since {utc_text(since)}" if since else "OFFLINE (never seen)"
    nodes = ", ".join(worker["nodes"]) or "-"
    workflows = "  runs the workflows" if worker.get("runs_workflows") else ""
    name = worker["name"] or ("(unnamed)" if worker["nodes"] else "(workflows)")
    return f"{name:<12} {worker.get('host') or '?':<20} {status:<38} nodes: {nodes}{workflows}"


def utc_text(moment: str) -> str:
    return datetime.fromisoformat(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        default=os.environ.get("TASK_SCHEDULER_API_URL", "http://127.0.0.1:8000"),
        help="the API's address (default: $TASK_SCHEDULER_API_URL or http://127.0.0.1:8000)",
    )
    parser.add_argument("--token", help="bearer token (default: $TASK_SCHEDULER_TOKEN, or the dev stack's)")
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help=argparse.SUPPRESS)


def add_task_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    task = commands.add_parser("task", help="start, list, show and control tasks (through the API)")
    actions = task.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="start a task")
    start.add_argument("workflow", help="the lab workflow to run")
    start.add_argument("--args", default="{}", help='task arguments as JSON, e.g. \'{"plate": "P1"}\'')
    start.add_argument("--id", help="your own task id (a retried start with the same id is refused)")
    start.add_argument("--priority", type=int, default=0, help="higher runs first on a busy node")
    start.add_argument("--wait", action="store_true", help="follow the task until it is over or stops")
    listing = actions.add_parser("list", help="list tasks")
    listing.add_argument("--state", help="PENDING, ACTIVE, PAUSED, ERROR, FINISHED or CANCELLED")
    listing.add_argument("--workflow", help="only tasks of this lab workflow")
    listing.add_argument("--node", help="only tasks now at this node")
    for name, text in (
        ("show", "show a task and its steps"),
        ("wait", "follow a task live"),
        ("pause", "pause after the current step"),
        ("continue", "continue a paused or failed task"),
        ("cancel", "cancel a task (its running step is aborted)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("task_id")
        if name == "continue":
            action.add_argument(
                "--mode",
                choices=["retry", "next"],
                default="retry",
                help="after a failed step: run it again (retry) or move on (next)",
            )
        if name in ("continue", "cancel"):
            action.add_argument("--reason", help="why: kept with the decision in the task")
    for sub in actions.choices.values():
        add_client_arguments(sub)
    task.set_defaults(handler=cmd_task)


def add_node_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`node list`, `node restart ID`, and `workers` (the workers hosting the nodes)."""
    node = commands.add_parser("node", help="list and restart nodes (through the API)")
    actions = node.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_client_arguments(actions.add_parser("list", help="nodes, their state, holder and worker"))
    restart = actions.add_parser("restart", help="restart a node (clears its ERROR)")
    restart.add_argument("node_id")
    add_client_arguments(restart)
    node.set_defaults(handler=cmd_node)
    # Not `worker`: that command runs a worker.
    workers = commands.add_parser("workers", help="the lab's workers (one per PC): online or since when not")
    add_client_arguments(workers)
    workers.set_defaults(handler=cmd_workers)


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


def add_timeline_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`timeline --since 2h --out lab.svg`: the Gantt chart of tasks on nodes, as an SVG file."""
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


def cmd_stats(args: argparse.Namespace) -> int:
    """Print the lab's statistics (GET /stats) as tables, or as JSON with --json."""
    since, until = window(args.since, args.until, datetime.now(UTC), default="7d")
    stats = api_client(args).get("/stats", since=since.isoformat(), until=until.isoformat())
    print(json.dumps(stats, indent=2) if args.json else render_stats(stats))
    return 0


def render_stats(stats: dict[str, Any]) -> str:
    """The node, workflow and week tables of GET /stats, as a terminal shows them."""
    lines = [
        f"from {utc_text(stats['since'])} to {utc_text(stats['until'])} (nodes: whole {stats['resolution']}s "
        f"from {utc_text(stats['nodes_since'])}; p95 within 5 %)",
        f"{'node':<16}{'calls':>7}{'ok':>6}{'failed':>7}{'lost':>6}{'rate':>7}"
        f"{'min s':>9}{'mean s':>9}{'p95 s':>9}{'max s':>9}{'waited s':>10}{'mean wait':>10}",
    ]
    lines.extend(_node_row(node) for node in stats["nodes"])
    names = list(stats["workflows"][0]["outcomes"]) if stats["workflows"] else []
    lines.append(f"\n{'workflow':<28}{'tasks':>7}" + "".join(f"{n:>11}" for n in names))
    for flow in stats["workflows"]:
        lines.append(
            f"{flow['workflow']:<28}{flow['tasks']:>7}" + "".join(f"{flow['outcomes'][n]:>11}" for n in names)
        )
    lines.append(f"\n{'week':<10}{'from':<12}{'tasks':>7}")
    lines.extend(f"{w['week']:<10}{w['start']:<12}{w['tasks']:>7}" for w in stats["tasks_per_week"])
    lines.extend(f"note: {note}" for note in stats["notes"])
    return "\n".join(lines)


def _node_row(node: dict[str, Any]) -> str:
    run, wait, rate = node["duration_s"], node["waited_s"], node["success_rate"]
    times = [_seconds(run[k], 9) for k in ("min", "mean", "p95", "max")]
    return (
        f"{node['node']:<16}{node['calls']:>7}{node['successes']:>6}{node['failures']:>7}{node['lost']:>6}"
        f"{'-' if rate is None else f'{rate:.0%}':>7}{''.join(times)}"
        f"{_seconds(wait['total'], 10)}{_seconds(wait['mean'], 10)}"
        + (f"  ({node['note']})" if node["note"] else "")
    )


def _seconds(value: float | None, width: int) -> str:
    return f"{'-' if value is None else f'{value:.1f}':>{width}}"


def add_stats_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`stats --since 7d [--json]`: per node calls, outcomes and times; per workflow tasks; per week."""
    stats = commands.add_parser("stats", help="the lab's statistics: nodes, workflows, tasks per week")
    stats.add_argument("--since", default="7d", help="ISO time or a duration back (2h, 7d, 4w); default 7d")
    stats.add_argument("--until", help="ISO time or a duration back; default now")
    stats.add_argument("--json", action="store_true", help="print the API's JSON answer")
    add_client_arguments(stats)
    stats.set_defaults(handler=cmd_stats)
