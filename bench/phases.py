"""Where a step's time goes, phase by phase, for the tasks of one workload (after `run.py --trace --keep`):

    .venv/bin/python bench/phases.py RUN_DIR w1- p1-

Joins the tasks' histories (activity scheduled / completed, the next workflow task), the step
activity's own phase marks (bench/traced_worker.py) and the drivers' log lines; prints the median and
mean of each phase in ms. A prefix whose tasks have no trace (the baseline) gets the phases it has.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from measure import read_uses
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from task_scheduler.devserver import DevServer

# (phase, from mark, to mark); marks: history events, the trace's `<phase>>`/`<phase><`, driver lines.
OURS = [
    ("dispatch: scheduled -> activity runs", "scheduled", "__aenter__>"),
    ("heartbeat + gate", "__aenter__>", "_begin>"),
    ("ledger begin_use round trip", "_begin>", "_begin<"),
    ("begin answered -> driver starts", "_begin<", "driver>"),
    ("driver", "driver>", "driver<"),
    ("driver ends -> end of use recorded", "driver<", "_finish<"),
    ("   of which: end_use round trip", "_end>", "_end<"),
    ("end recorded -> activity returns", "_finish<", "__aexit__<"),
    ("activity returns -> completed in history", "__aexit__<", "completed"),
    ("workflow task: completed -> next scheduled", "completed", "next"),
    ("step total: scheduled -> next scheduled", "scheduled", "next"),
]
PLAIN = [
    ("dispatch: scheduled -> driver starts", "scheduled", "driver>"),
    ("driver", "driver>", "driver<"),
    ("driver ends -> completed in history", "driver<", "completed"),
    ("workflow task: completed -> next scheduled", "completed", "next"),
    ("step total: scheduled -> next scheduled", "scheduled", "next"),
]
Marks = dict[str, float]


async def history_marks(client: Client, task_id: str) -> dict[int, Marks]:
    """Per step (1..5): scheduled, completed, and the next activity's scheduling (or the end)."""
    history = await client.get_workflow_handle(task_id).fetch_history()
    steps: dict[int, Marks] = {}
    scheduled_ids: dict[int, int] = {}
    for event in history.events:
        at = event.event_time.ToNanoseconds() / 1e9
        kind = EventType.Name(event.event_type)
        if kind == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED":
            step = len(scheduled_ids) + 1
            scheduled_ids[event.event_id] = step
            steps[step] = {"scheduled": at}
            if step > 1:
                steps[step - 1].setdefault("next", at)
        elif kind == "EVENT_TYPE_ACTIVITY_TASK_COMPLETED":
            step = scheduled_ids[event.activity_task_completed_event_attributes.scheduled_event_id]
            steps[step]["completed"] = at
        elif kind == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED" and steps:
            steps[len(steps)].setdefault("next", at)
    return steps


def trace_marks(run_dir: Path) -> dict[tuple[str, int], Marks]:
    """(task id, step 1..5) -> the first time each phase mark was written, and the heartbeats sent."""
    marks: dict[tuple[str, int], Marks] = defaultdict(dict)
    trace = run_dir / "trace.log"
    for line in trace.read_text(encoding="utf-8").splitlines() if trace.exists() else []:
        at, task_id, activity_id, label = line.split()
        step = int(activity_id.split("-")[1])  # step-<n>-<node>-run-<r>
        if label == "heartbeat":
            marks[(task_id, step)]["heartbeats"] = marks[(task_id, step)].get("heartbeats", 0) + 1
        else:
            marks[(task_id, step)].setdefault(label, float(at))
    return marks


async def phases(client: Client, run_dir: Path, prefix: str) -> dict[str, list[float]]:
    traced = trace_marks(run_dir)
    uses = read_uses(run_dir / "drivers.log", prefix) + read_uses(run_dir / "plain.log", prefix)
    durations: dict[str, list[float]] = defaultdict(list)
    for task_id in sorted({use.task_id for use in uses}):
        steps = await history_marks(client, task_id)
        for use in (u for u in uses if u.task_id == task_id):
            marks = {**steps.get(use.step, {}), **traced.get((task_id, use.step), {}), "driver>": use.start}
            if use.end is not None:
                marks["driver<"] = use.end
            for name, begin, end in OURS if (task_id, use.step) in traced else PLAIN:
                if begin in marks and end in marks:
                    durations[name].append((marks[end] - marks[begin]) * 1000)
            if (task_id, use.step) in traced:
                durations["heartbeats sent (count, not ms)"].append(marks.get("heartbeats", 0))
    return durations


def show(prefix: str, durations: dict[str, list[float]]) -> str:
    lines = [f"--- {prefix}*: median / mean ms per step ({len(next(iter(durations.values()), []))} steps)"]
    for name, values in durations.items():
        lines.append(f"  {name:<44} {statistics.median(values):7.1f} {statistics.fmean(values):7.1f}")
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("prefixes", nargs="+", help="task id prefixes, e.g. w1- p1-")
    args = parser.parse_args(argv)
    async with DevServer(db_file=args.run_dir / "temporal.db") as server:
        client = await Client.connect(server.address)
        for prefix in args.prefixes:
            print(show(prefix, await phases(client, args.run_dir, prefix)))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
