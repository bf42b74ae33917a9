"""The benchmarks of task_scheduler against bare Temporal (`make bench`; DESIGN.md, "Performance").

Starts its own stack in a temporary folder: a Temporal dev server on free ports started as `task-scheduler
dev` starts it, `task-scheduler worker` and `task-scheduler api` subprocesses on the bench lab (bench/lab:
node-1..node-5, one five-step workflow), and the baseline's worker (bench/baseline.py). Runs the
workloads, prints one table (figure, ours, baseline, ratio) and writes it to bench/results/latest.json.

    .venv/bin/python bench/run.py [--only W1,W2] [--quick] [--keep] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from context import QUICK, Bench, Params
from crash import w4_crash
from report import table, targets_summary, with_reference_rows, write_json
from stack import BIN, BenchStack
from workloads import w1_overhead, w2_contention, w3_start_rate, w5_lab_pace, w6_protocol

RESULTS = Path(__file__).resolve().parent / "results"
WORKLOADS: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "W1": w1_overhead,
    "W2": w2_contention,
    "W3": w3_start_rate,
    "W4": w4_crash,
    "W5": w5_lab_pace,
    "W6": w6_protocol,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(WORKLOADS), help="workloads to run, e.g. W1,W2")
    parser.add_argument("--quick", action="store_true", help="fewer tasks: a smoke run of a minute or two")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs, database)")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="where the JSON goes")
    parser.add_argument(
        "--trace", action="store_true", help="time the step phases (bench/phases.py reads them)"
    )
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="record the worker with py-spy during each workload"
    )
    args = parser.parse_args(argv)
    args.only = [name.strip().upper() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    return args


async def run(args: argparse.Namespace) -> int:
    params = QUICK if args.quick else Params()
    run_dir = Path(tempfile.mkdtemp(prefix="task-scheduler-bench-"))
    stack = BenchStack(run_dir, trace=args.trace)
    print(f"Temporal dev server: {' '.join(stack.server.command())}", flush=True)
    began, load_at_start = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
    print(f"load average at start: {load_at_start} (other processes on this machine skew the figures)")
    bench: Bench | None = None
    failed: str | None = None
    try:
        await stack.start()
        pids = ", ".join(f"{name} pid {proc.pid}" for name, proc in stack.procs.items())
        print(f"stack ready in {run_dir} ({pids})", flush=True)
        bench = Bench(stack, params)
        failed = await _run_workloads(args, bench)
    finally:
        if bench is not None:
            await bench.close()
        await asyncio.to_thread(stack.stop)
    rows = with_reference_rows(bench.rows)
    load_at_end = [round(x, 2) for x in os.getloadavg()]
    print(f"\n{table(rows)}\n\n{targets_summary(rows)}\nload average at the end: {load_at_end}\n")
    meta = {
        "params": vars(params),
        "workloads": args.only,
        "server_command": stack.server.command(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_at_end,
        "targets": targets_summary(rows),
        "failed": failed,
    }
    write_json(args.out, rows, {**meta, "duration_s": round(time.perf_counter() - began, 1)})
    print(f"written to {args.out}; run folder {run_dir}{'' if args.keep else ' (removed)'}")
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 1 if failed else 0


async def _run_workloads(args: argparse.Namespace, bench: Bench) -> str | None:
    """The workloads in order; the first that fails stops the run (what it left, e.g. tasks holding
    nodes, would skew the next), and the rows measured so far are still printed and written."""
    for name in args.only:
        print(f"{name} ...", flush=True)
        try:
            with _profiled(args.profile, name, bench.stack):
                await WORKLOADS[name](bench)
        except Exception as error:  # reported with the table, not instead of it
            traceback.print_exc()
            print(f"{name} failed: {error!r}; the workloads after it were not run", flush=True)
            return f"{name}: {error!r}"
    return None


@contextlib.contextmanager
def _profiled(folder: Path | None, name: str, stack: BenchStack) -> Iterator[None]:
    """py-spy attached to the worker (not blocking it) while the workload runs; raw folded stacks."""
    if folder is None:
        yield
        return
    spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"{name}-worker.txt"
    command = [spy, "record", "--pid", str(stack.proc("worker").pid), "--rate", "200", "--nonblocking"]
    recorder = subprocess.Popen(
        [*command, "--format", "raw", "--output", str(output)], stdout=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
        print(f"  profile of the worker: {output}")


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
