"""The Temporal dev server's SQLite settings compared on bare Temporal (bench/baseline.py's plain workflow,
no task_scheduler code), so the figures are the server's alone.

For each candidate (a set of `--sqlite-pragma` values) a fresh dev server on a new SQLite file and the
baseline's worker are started, then: W1 (no-op tasks one at a time: per-step wall, server clock), W2
(tasks of five 50 ms steps at once: makespan, server CPU per step) and W3 (starts, 16 in flight: starts
accepted per second, time until all finished, server CPU per step). Rounds alternate the candidates, so
a change of machine load hits them alike; each figure is the median over the rounds.

    .venv/bin/python bench/server_settings.py [--rounds 2] [--w2 100] [--w3 500] [--only default,wal-full]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import baseline
from measure import makespan_s, read_uses
from stack import BENCH, Proc, clean_environment, cpu_s
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from task_scheduler.devserver import DevServer
from task_scheduler.readers.pollers import live_pollers

T = TypeVar("T")
STEPS = len(baseline.NODES)
CANDIDATES: dict[str, dict[str, str]] = {
    "default": {},
    "wal-full": {"journal_mode": "wal", "synchronous": "full"},
    "wal-normal": {"journal_mode": "wal", "synchronous": "normal"},
    "truncate-full": {"journal_mode": "truncate", "synchronous": "full"},
    "wal-full-cache": {
        "journal_mode": "wal",
        "synchronous": "full",
        "cache_size": "-65536",
        "temp_store": "memory",
    },
    "wal-full-mmap": {"journal_mode": "wal", "synchronous": "full", "mmap_size": "268435456"},
    "wal-full-ckpt": {"journal_mode": "wal", "synchronous": "full", "wal_autocheckpoint": "10000"},
}


@dataclass
class Figures:
    w1_step_ms: list[float] = field(default_factory=list)
    w2_makespan_s: list[float] = field(default_factory=list)
    w2_server_cpu_ms: list[float] = field(default_factory=list)
    w3_starts_per_s: list[float] = field(default_factory=list)
    w3_all_done_s: list[float] = field(default_factory=list)
    w3_server_cpu_ms: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {name: round(statistics.median(values), 2) for name, values in vars(self).items() if values}


async def bounded(limit: int, calls: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


class Run:
    """One dev server with one candidate's settings, and the baseline's worker on it."""

    def __init__(self, folder: Path, pragmas: dict[str, str]) -> None:
        self.folder = folder
        self.server = DevServer(
            db_file=folder / "temporal.db", sqlite_pragmas=pragmas, log_file=folder / "temporal.log"
        )
        self.log = folder / "plain.log"
        self.worker: Proc | None = None
        self.client: Client | None = None

    async def __aenter__(self) -> Run:
        self.server.start()
        await self.server.wait_ready()
        self.client = await Client.connect(self.server.address, data_converter=pydantic_data_converter)
        command = [sys.executable, str(BENCH / "baseline.py"), "--address", self.server.address]
        self.worker = Proc(
            "baseline", command, self.folder / "baseline.out", self.folder, clean_environment()
        )
        self.worker.start()
        await self._polled()
        return self

    async def _polled(self) -> None:
        assert self.client is not None
        deadline = time.monotonic() + 60
        queues = [(baseline.plain_queue(n), True) for n in baseline.NODES] + [
            (baseline.WORKFLOW_QUEUE, False)
        ]
        while not all([await live_pollers(self.client, q, activities=a) for q, a in queues]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the baseline worker did not poll in time (see {self.folder})")
            await asyncio.sleep(0.2)

    async def __aexit__(self, *_: object) -> None:
        if self.worker is not None:
            self.worker.stop()
        await asyncio.to_thread(self.server.stop)

    async def start(self, task_id: str, sleep_s: float) -> None:
        assert self.client is not None
        task = baseline.PlainTask(task_id, sleep_s, str(self.log), baseline.NODES)
        await self.client.start_workflow(
            baseline.PlainWorkflow.run, task, id=task_id, task_queue=baseline.WORKFLOW_QUEUE
        )

    async def finish(self, task_id: str) -> float:
        """Wait for the task's result; its close time (server clock, epoch seconds)."""
        assert self.client is not None
        handle = self.client.get_workflow_handle(task_id)
        await asyncio.wait_for(handle.result(), 300)
        description = await handle.describe()
        assert description.close_time is not None
        if task_id.startswith("s1-"):
            return (description.close_time - description.start_time).total_seconds()
        return description.close_time.timestamp()

    def server_cpu_s(self) -> float:
        assert self.server.pid is not None
        return cpu_s(self.server.pid)


async def w1(run: Run, tasks: int, figures: Figures) -> None:
    steps = []
    for index in range(tasks + 2):
        await run.start(f"s1-{index:03d}", 0)
        wall_s = await run.finish(f"s1-{index:03d}")
        if index >= 2:  # two warm-ups
            steps.append(wall_s / STEPS * 1000)
    figures.w1_step_ms.append(statistics.median(steps))


async def w2(run: Run, tasks: int, figures: Figures) -> None:
    ids = [f"s2-{i:03d}" for i in range(tasks)]
    cpu_before = run.server_cpu_s()
    await asyncio.gather(*(run.start(task_id, 0.05) for task_id in ids))
    await asyncio.gather(*(run.finish(task_id) for task_id in ids))
    figures.w2_server_cpu_ms.append((run.server_cpu_s() - cpu_before) / (tasks * STEPS) * 1000)
    figures.w2_makespan_s.append(makespan_s(read_uses(run.log, "s2-")))


async def w3(run: Run, starts: int, figures: Figures) -> None:
    ids = [f"s3-{i:04d}" for i in range(starts)]
    cpu_before, began_at, began = run.server_cpu_s(), time.time(), time.perf_counter()
    await bounded(16, [lambda t=task_id: run.start(t, 0) for task_id in ids])
    figures.w3_starts_per_s.append(starts / (time.perf_counter() - began))
    closed = await bounded(64, [lambda t=task_id: run.finish(t) for task_id in ids])
    figures.w3_all_done_s.append(max(closed) - began_at)
    figures.w3_server_cpu_ms.append((run.server_cpu_s() - cpu_before) / (starts * STEPS) * 1000)


async def one_round(name: str, args: argparse.Namespace, figures: Figures, root: Path) -> None:
    """One candidate's workloads; a failure is printed (its folder kept) and the comparison goes on."""
    folder = root / f"{name}-{len(figures.loads)}"
    folder.mkdir()
    figures.loads.append(os.getloadavg()[0])
    try:
        async with Run(folder, CANDIDATES[name]) as run:
            await w1(run, args.w1, figures)
            await w2(run, args.w2, figures)
            await w3(run, args.w3, figures)
    except Exception as error:  # any failure of one candidate is reported, not fatal
        print(f"  {name} round {len(figures.loads)} failed: {error!r} (see {folder})", flush=True)
        return
    print(f"  {name} round {len(figures.loads)}: {figures.summary()}", flush=True)
    shutil.rmtree(folder, ignore_errors=True)


async def main_async(args: argparse.Namespace) -> None:
    names = args.only.split(",") if args.only else list(CANDIDATES)
    results = {name: Figures() for name in names}
    root = Path(tempfile.mkdtemp(prefix="server-settings-"))
    print(f"load {os.getloadavg()}, folder {root}", flush=True)
    for _ in range(args.rounds):
        for name in names:
            await one_round(name, args, results[name], root)
    summary = {name: {"pragmas": CANDIDATES[name], **figures.summary()} for name, figures in results.items()}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--w1", type=int, default=10, help="W1 tasks per round")
    parser.add_argument("--w2", type=int, default=100, help="W2 tasks per round")
    parser.add_argument("--w3", type=int, default=500, help="W3 starts per round")
    parser.add_argument("--only", default="", help=f"candidates, of {','.join(CANDIDATES)}")
    parser.add_argument("--out", type=Path, help="write the summary as JSON here")
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
