"""`task-scheduler worker` with the phases of each step activity timed, for profiling only
(`bench/run.py --trace`; read with bench/phases.py). Each line of $BENCH_TRACE:
`<unix time> <workflow id> <activity id> <phase>>` (entered), `<phase><` (left) or `heartbeat` (one sent)."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio import activity

from task_scheduler import cli
from task_scheduler.activities import heartbeat, steps, uses

TRACE = Path(os.environ.get("BENCH_TRACE", "trace.log")).resolve()
# (owner, method, the phase's name in the trace: bench/phases.py reads these)
PHASES: tuple[tuple[type, str, str], ...] = (
    (steps.StepActivities, "_acquire", "_acquire"),
    (steps.StepActivities, "_wait_turn", "_wait_turn"),
    (uses.NodeUses, "begin", "_begin"),
    (steps.StepActivities, "_use", "_use"),
    (steps.StepActivities, "_drive", "_drive"),
    (uses.NodeUses, "finish", "_finish"),
    (uses.NodeUses, "end", "_end"),
)


def mark(label: str) -> None:
    try:
        info = activity.info()
    except RuntimeError:
        return
    with TRACE.open("a", encoding="utf-8") as trace:
        trace.write(f"{time.time():.6f} {info.workflow_id} {info.activity_id} {label}\n")


def timed(owner: type, name: str, phase: str | None = None) -> None:
    original: Callable[..., Any] = getattr(owner, name)
    label = phase or name

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        mark(f"{label}>")
        try:
            return await original(*args, **kwargs)
        finally:
            mark(f"{label}<")

    setattr(owner, name, wrapper)


def counted_heartbeat(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def wrapper(*details: Any) -> None:
        mark("heartbeat")
        original(*details)

    return wrapper


for owner, method, phase in PHASES:
    timed(owner, method, phase)
timed(heartbeat.Heartbeat, "__aenter__")
timed(heartbeat.Heartbeat, "__aexit__")
activity.heartbeat = counted_heartbeat(activity.heartbeat)

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
