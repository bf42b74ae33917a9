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
from task_scheduler.activities import heartbeat, steps

TRACE = Path(os.environ.get("BENCH_TRACE", "trace.log")).resolve()
PHASES = ("_acquire", "_wait_turn", "_begin", "_use", "_drive", "_finish", "_end")


def mark(label: str) -> None:
    try:
        info = activity.info()
    except RuntimeError:
        return
    with TRACE.open("a", encoding="utf-8") as trace:
        trace.write(f"{time.time():.6f} {info.workflow_id} {info.activity_id} {label}\n")


def timed(owner: type, name: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        mark(f"{name}>")
        try:
            return await original(*args, **kwargs)
        finally:
            mark(f"{name}<")

    setattr(owner, name, wrapper)


def counted_heartbeat(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def wrapper(*details: Any) -> None:
        mark("heartbeat")
        original(*details)

    return wrapper


for phase in PHASES:
    timed(steps.StepActivities, phase)
timed(heartbeat.Heartbeat, "__aenter__")
timed(heartbeat.Heartbeat, "__aexit__")
activity.heartbeat = counted_heartbeat(activity.heartbeat)

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
