"""What the client commands print: the API's JSON answers as a terminal shows them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

LABEL_WIDTH = 14  # a node id's column, wider when a protocol's step labels are longer
# Temporal's status of a task's workflow that goes without saying beside the task's state: COMPLETED for
# FINISHED, CANCELED (Temporal's spelling) for CANCELLED, and RUNNING for any state (a task that ends
# tells the lab before its workflow closes). Any other (TERMINATED, TIMED_OUT, FAILED: someone or something
# ended it outside the scheduler) is shown beside the state, labelled as Temporal's.
CLOSED_AS = {"FINISHED": "COMPLETED", "CANCELLED": "CANCELED"}


def render_task(task: dict[str, Any]) -> str:
    lines = [task_header(task)]
    if task.get("reason"):
        lines.append(f"  reason: {task['reason']}")
    width = label_width(task)
    for step in task.get("steps", []):
        lines.append("  " + render_step(step, width=width))
        lines += _traceback_lines(step)
    lines += [render_decision(d) for d in task.get("decisions", [])]
    if task.get("ui_url"):
        lines.append(f"  Temporal UI: {task['ui_url']}")
    return "\n".join(lines)


def task_header(task: dict[str, Any]) -> str:
    """`task t-1  prepare-plate  ACTIVE`, and Temporal's status when it says something else."""
    note = temporal_note(task)
    return f"task {task['task_id']}  {task['workflow_name']}  {task['state']}" + (f"  {note}" if note else "")


def temporal_note(task: dict[str, Any]) -> str:
    status = task.get("temporal_status")
    if not status or status in ("RUNNING", "CONTINUED_AS_NEW", CLOSED_AS.get(task.get("state") or "")):
        return ""
    return f"(Temporal: {status})"


def render_decision(decision: dict[str, Any]) -> str:
    """`  decision 2026-12-01 14:03:10 UTC  alice: continue --mode next (step 3): the dose was done`"""
    mode = f" --mode {decision['mode']}" if decision.get("mode") else ""
    step = f" (step {decision['step'] + 1})" if decision.get("step") is not None else ""
    why = f": {decision['reason']}" if decision.get("reason") else ""
    at = decision["at"][:19].replace("T", " ")
    return f"  decision {at} UTC  {decision.get('by') or 'someone'}: {decision['command']}{mode}{step}{why}"


def render_step(step: dict[str, Any], now: datetime | None = None, width: int = LABEL_WIDTH) -> str:
    """`> 2. arm            RUNNING ...`: a step's line; every step that runs is marked (branches of a
    protocol run at once), a wait says when it ends and how long is left."""
    took = ""
    if step.get("started_at") and step.get("finished_at"):
        took = f"{_duration_s(step['started_at'], step['finished_at']):.1f} s"
    marker = ">" if step["outcome"] in ("RUNNING", "WAITING") else " "
    message = f"  {step['message']}" if step.get("message") else ""
    if step.get("waiting_position"):
        message += f"  (number {step['waiting_position']} in its node's line)"
    if step["outcome"] == "RUNNING" and step.get("ends_at") and not step.get("finished_at"):
        message += f"  ({wait_left_text(step, now or datetime.now(UTC))})"
    elif step["outcome"] == "RUNNING" and step.get("started_at") and not step.get("finished_at"):
        message += f"  (running since {step['started_at'][:19].replace('T', ' ')} UTC)"
    label = step_label(step)
    line = f"{marker} {step['index'] + 1}. {label:<{width}} {step['outcome']:<10} {took:>8}{message}"
    return line.rstrip()


def label_width(task: dict[str, Any]) -> int:
    """The width of the steps' labels column: the longest label, at least LABEL_WIDTH (a protocol's
    `read-blank: reader` is longer than a node id)."""
    return max([LABEL_WIDTH, *(len(step_label(step)) for step in task.get("steps", []))])


def step_label(step: dict[str, Any]) -> str:
    """The step's node, or `wait`; a step with an id of its own says it first (`B: reader`)."""
    where = step.get("node") or "wait"
    given = step.get("id")
    return f"{given}: {where}" if given and given != str(step["index"] + 1) else where


def wait_left_text(step: dict[str, Any], now: datetime) -> str:
    """`ends 2026-12-01 14:30:00 UTC, 3 min 05 s left`: a running wait."""
    left_s = (datetime.fromisoformat(step["ends_at"]) - now).total_seconds()
    return f"ends {utc_text(step['ends_at'])}, {duration_text(left_s)} left"


def duration_text(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _traceback_lines(step: dict[str, Any]) -> list[str]:
    """The driver's own frames of a step that raised, under the step: its file and line at a glance."""
    if not step.get("traceback"):
        return []
    return ["       " + line for line in step["traceback"].rstrip().splitlines()]


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    """A header row and the rows, each column as wide as its widest cell, two spaces apart."""
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [headers, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def render_tasks(tasks: list[dict[str, Any]]) -> str:
    """`task list`: a task a row; Temporal's status only where it is not what the state implies."""
    rows = [
        [
            t["task_id"],
            t["workflow_name"] or "-",
            t["state"] or "-",
            t["current_node"] or "-",
            temporal_note(t),
        ]
        for t in tasks
    ]
    return render_table(["TASK", "WORKFLOW", "STATE", "NODE", ""], rows) if rows else "no tasks"


def render_nodes(nodes: list[dict[str, Any]]) -> str:
    """`node list`: each node's state, its worker and whether it is online, who holds it, who waits."""
    rows = [
        [
            node["id"],
            node["state"] or "?",
            node.get("worker") or "-",
            "online" if node.get("online", node["hosted"]) else "OFFLINE",
            _holders_text(node),
            str(len(node["waiting_tasks"])),
            node.get("reason") or "",
        ]
        for node in nodes
    ]
    return render_table(["NODE", "STATE", "WORKER", "ONLINE", "HOLDER", "WAITING", "REASON"], rows)


def _holders_text(node: dict[str, Any]) -> str:
    """The tasks holding the node (`T (hold)` for a step that keeps it while running elsewhere), and
    its capacity when it has more than one place: `t1, t2 (hold) 2/4`."""
    holders = node.get("holders") or ([node["holder"]] if node.get("holder") else [])
    named = ", ".join(h["key"]["task_id"] + (" (hold)" if h.get("hold") else "") for h in holders) or "-"
    capacity = node.get("capacity", 1)
    return f"{named} {len(holders)}/{capacity}" if capacity > 1 else named


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


def render_stats(stats: dict[str, Any]) -> str:
    """The node, workflow and week tables of GET /stats, as a terminal shows them."""
    lines = [
        f"from {utc_text(stats['since'])} to {utc_text(stats['until'])} (nodes: whole {stats['resolution']}s "
        f"from {utc_text(stats['nodes_since'])}; p95 within 5 %)",
        f"{'node':<16}{'calls':>7}{'ok':>6}{'failed':>7}{'cancel':>7}{'lost':>6}{'rate':>7}"
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


def utc_text(moment: str) -> str:
    return datetime.fromisoformat(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _node_row(node: dict[str, Any]) -> str:
    run, wait, rate = node["duration_s"], node["waited_s"], node["success_rate"]
    times = [_figure(run[k], 9) for k in ("min", "mean", "p95", "max")]
    return (
        f"{node['node']:<16}{node['calls']:>7}{node['successes']:>6}{node['failures']:>7}"
        f"{node.get('cancelled', 0):>7}{node['lost']:>6}"
        f"{'-' if rate is None else f'{rate:.0%}':>7}{''.join(times)}"
        f"{_figure(wait['total'], 10)}{_figure(wait['mean'], 10)}"
        + (f"  ({node['note']})" if node["note"] else "")
    )


def _figure(value: float | None, width: int) -> str:
    return f"{'-' if value is None else f'{value:.1f}':>{width}}"


def _duration_s(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
