"""W1 overhead, W2 contention, W3 start rate, W5 lab pace, W6 protocol (W4, the crash, is in crash.py)."""

from __future__ import annotations

import asyncio
import json
import time
from functools import partial

import protocol_ideal
from context import STEPS, Bench, Usage, bounded, elapsed_since, ideal_makespan_s
from measure import Use, hand_offs, makespan_s, median, percentile, read_uses
from report import Row
from stack import LAB

MS = 1000.0


# --- W1 overhead: no-op steps, one task at a time ----------------------------------------------------


async def w1_overhead(bench: Bench) -> None:
    """Ours and the baseline alternate task by task, so a change of machine load hits both alike."""
    ours: list[tuple[float, float]] = []
    plain: list[tuple[float, float]] = []
    for index in range(bench.params.w1_warmup + bench.params.w1_tasks):
        our_run = await _one_ours(bench, f"w1-{index:03d}")
        plain_run = await _one_plain(bench, f"p1-{index:03d}")
        if index >= bench.params.w1_warmup:
            ours.append(our_run)
            plain.append(plain_run)
    our_steps = [server_s / STEPS * MS for server_s, _ in ours]
    plain_steps = [server_s / STEPS * MS for server_s, _ in plain]
    bench.add(
        Row("W1 per-step wall, median", median(our_steps), median(plain_steps), "ms"),
        Row("W1 per-step wall, p95", percentile(our_steps, 95), percentile(plain_steps, 95), "ms"),
        Row(
            "W1 task, client-observed, median",
            median([wall * MS for _, wall in ours]),
            median([wall * MS for _, wall in plain]),
            "ms",
        ),
    )


async def _one_ours(bench: Bench, task_id: str) -> tuple[float, float]:
    """(server start-to-close, client-observed wall: POST /tasks to the answer of /wait), seconds."""
    start = time.perf_counter()
    status = await bench.start_ours(task_id, 0)
    if status != 201:
        raise RuntimeError(f"POST /tasks answered {status} for {task_id}")
    shown = await bench.api("GET", f"/tasks/{task_id}/wait", None)
    wall = elapsed_since(start)
    if shown["state"] != "FINISHED":
        raise RuntimeError(f"{task_id} ended {shown['state']}: {shown.get('reason')}")
    return await bench.server_time_s(task_id), wall


async def _one_plain(bench: Bench, task_id: str) -> tuple[float, float]:
    start = time.perf_counter()
    await bench.start_plain(task_id, 0)
    await bench.result(task_id)
    wall = elapsed_since(start)
    return await bench.server_time_s(task_id), wall


# --- W2 contention and W5 lab pace: every task submitted at once --------------------------------------


async def _burst_ours(
    bench: Bench, prefix: str, tasks: int, sleep_s: float, workflow: str | None = None
) -> list[int]:
    ids = [f"{prefix}-{i:03d}" for i in range(tasks)]
    statuses = await asyncio.gather(*(bench.start_ours(task_id, sleep_s, workflow) for task_id in ids))
    accepted = [task_id for task_id, status in zip(ids, statuses, strict=True) if status == 201]
    results = await asyncio.gather(*(bench.result(task_id) for task_id in accepted))
    return [int(r["state"] == "FINISHED") for r in results]


async def _burst_plain(bench: Bench, prefix: str, tasks: int, sleep_s: float) -> list[int]:
    ids = [f"{prefix}-{i:03d}" for i in range(tasks)]
    await asyncio.gather(*(bench.start_plain(task_id, sleep_s) for task_id in ids))
    results = await asyncio.gather(*(bench.result(task_id) for task_id in ids))
    return [int(r == STEPS) for r in results]


async def w2_contention(bench: Bench) -> None:
    tasks, sleep_s = bench.params.w2_tasks, bench.params.w2_sleep_s
    ours_done, ours_usage = await bench.measured(lambda: _burst_ours(bench, "w2", tasks, sleep_s))
    plain_done, plain_usage = await bench.measured(lambda: _burst_plain(bench, "p2", tasks, sleep_s))
    ours = read_uses(bench.stack.drivers_log, "w2-")
    plain = read_uses(bench.stack.plain_log, "p2-")
    ideal = ideal_makespan_s(tasks, sleep_s)
    ours_hand, plain_hand = hand_offs(ours), hand_offs(plain)
    bench.add(
        Row("W2 tasks finished", f"{sum(ours_done)}/{tasks}", f"{sum(plain_done)}/{tasks}"),
        Row("W2 makespan", makespan_s(ours), makespan_s(plain), "s"),
        Row("W2 makespan vs ideal", makespan_s(ours), ideal, "s"),
        Row(
            "W2 node hand-off p50",
            median(ours_hand.latencies_s) * MS,
            median(plain_hand.latencies_s) * MS,
            "ms",
        ),
        Row(
            "W2 node hand-off p95",
            percentile(ours_hand.latencies_s, 95) * MS,
            percentile(plain_hand.latencies_s, 95) * MS,
            "ms",
        ),
        Row("W2 overlapping uses of a node", ours_hand.overlaps, plain_hand.overlaps),
        *_cpu_rows("W2", ours_usage, plain_usage, tasks * STEPS),
        *_memory_rows("W2", ours_usage, plain_usage),
    )


async def w5_lab_pace(bench: Bench) -> None:
    tasks, sleep_s = bench.params.w5_tasks, bench.params.w5_sleep_s
    done = await _burst_ours(bench, "w5", tasks, sleep_s)
    ours = read_uses(bench.stack.drivers_log, "w5-")
    bench.add(
        Row("W5 tasks finished", f"{sum(done)}/{tasks}"),
        Row("W5 makespan vs ideal", makespan_s(ours), ideal_makespan_s(tasks, sleep_s), "s"),
    )


# --- W6 protocol: the demo lab's protocol on bench nodes, every task at once ---------------------------

PROTOCOL = "bench-protocol"
HOLDER_STEP, HELD_NODE = 6, "node-5"  # `load` (on node-3) holds the reader, node-5
INCUBATOR = "incubator"


async def w6_protocol(bench: Bench) -> None:
    """Branches, an incubator of four places, a wait and a move that holds the reader: the makespan
    against the protocol's ideal (a lower bound, protocol_ideal.py), and whether the holds and the
    capacity held (uses of the held reader during another task's move; most incubations at once)."""
    tasks = bench.params.w6_tasks
    done = await _burst_ours(bench, "w6", tasks, 0.0, PROTOCOL)
    uses = read_uses(bench.stack.drivers_log, "w6-")
    workflows = json.loads((LAB / "workflows.json").read_text())["workflows"]
    nodes = json.loads((LAB / "nodes.json").read_text())["nodes"]
    steps = protocol_ideal.steps_of(next(w for w in workflows if w["name"] == PROTOCOL))
    capacities = {n["id"]: n.get("capacity", 1) for n in nodes}
    ideal = protocol_ideal.ideal_makespan_s(steps, tasks, capacities)
    bench.add(
        Row("W6 tasks finished", f"{sum(done)}/{tasks}"),
        Row("W6 makespan vs ideal", makespan_s(uses), ideal, "s"),
        Row("W6 reads during another task's held move", _held_overlaps(uses)),
        Row(
            "W6 most incubations at once (capacity 4)",
            _most_at_once([u for u in uses if u.node == "incubator"]),
        ),
    )


def _held_overlaps(uses: list[Use]) -> int:
    """Runs on the held node that overlap another task's step holding it: must be 0."""
    holds = [u for u in uses if u.step == HOLDER_STEP and u.end is not None]
    held = [u for u in uses if u.node == HELD_NODE and u.end is not None]
    return sum(
        1
        for h in holds
        for u in held
        if u.task_id != h.task_id and u.start < h.end and h.start < u.end  # type: ignore[operator]
    )


def _most_at_once(uses: list[Use]) -> int:
    edges = sorted([(u.start, 1) for u in uses] + [(u.end or u.start, -1) for u in uses])
    now = most = 0
    for _, change in edges:
        now += change
        most = max(most, now)
    return most


def _cpu_rows(name: str, ours: Usage, plain: Usage, steps: int) -> list[Row]:
    worker = ours.cpu_s.get("worker", 0.0) / steps * MS
    plain_worker = plain.cpu_s.get("baseline", 0.0) / steps * MS
    server, plain_server = (u.cpu_s.get("server", 0.0) / steps * MS for u in (ours, plain))
    return [
        Row(f"{name} worker CPU per step", worker, plain_worker, "ms"),
        Row(f"{name} API CPU per step", ours.cpu_s.get("api", 0.0) / steps * MS, None, "ms"),
        Row(f"{name} Temporal server CPU per step", server, plain_server, "ms"),
    ]


def _memory_rows(name: str, ours: Usage, plain: Usage) -> list[Row]:
    return [
        Row(f"{name} peak RSS, worker", ours.peak_mib.get("worker"), plain.peak_mib.get("baseline"), "MiB"),
        Row(f"{name} peak RSS, API", ours.peak_mib.get("api"), None, "MiB"),
    ]


# --- W3 start rate: starts 16 at a time ---------------------------------------------------------------


async def w3_start_rate(bench: Bench) -> None:
    starts, limit = bench.params.w3_starts, bench.params.w3_concurrency
    (ours, ours_usage) = await bench.measured(lambda: _rate_ours(bench, starts, limit))
    (plain, plain_usage) = await bench.measured(lambda: _rate_plain(bench, starts, limit))
    bench.add(
        Row("W3 starts accepted per second", ours.per_s, plain.per_s, "/s"),
        Row("W3 start errors", ours.errors, plain.errors),
        Row("W3 tasks finished", f"{ours.finished}/{starts}", f"{plain.finished}/{starts}"),
        Row("W3 time until all finished", ours.all_done_s, plain.all_done_s, "s"),
        *_cpu_rows("W3", ours_usage, plain_usage, starts * STEPS),
        *_memory_rows("W3", ours_usage, plain_usage),
    )


class Rate:
    def __init__(self, accepted: list[str], errors: int, starting_s: float) -> None:
        self.accepted, self.errors = accepted, errors
        self.per_s = len(accepted) / starting_s
        self.finished = 0
        self.all_done_s = float("nan")


async def _rate_ours(bench: Bench, starts: int, limit: int) -> Rate:
    ids = [f"w3-{i:04d}" for i in range(starts)]
    began_at, began = time.time(), time.perf_counter()
    statuses = await bounded(limit, [partial(bench.start_ours, task_id, 0) for task_id in ids])
    rate = Rate(
        [t for t, s in zip(ids, statuses, strict=True) if s == 201],
        sum(s != 201 for s in statuses),
        elapsed_since(began),
    )
    finished = await bounded(64, [partial(_finished_ours, bench, task_id) for task_id in rate.accepted])
    return _with_finish(rate, finished, began_at)


async def _rate_plain(bench: Bench, starts: int, limit: int) -> Rate:
    ids = [f"p3-{i:04d}" for i in range(starts)]
    began_at, began = time.time(), time.perf_counter()
    errors = await bounded(limit, [partial(_start_plain_counting, bench, task_id) for task_id in ids])
    rate = Rate([t for t, e in zip(ids, errors, strict=True) if not e], sum(errors), elapsed_since(began))
    finished = await bounded(64, [partial(_finished_plain, bench, task_id) for task_id in rate.accepted])
    return _with_finish(rate, finished, began_at)


async def _start_plain_counting(bench: Bench, task_id: str) -> int:
    try:
        await bench.start_plain(task_id, 0)
    except Exception:  # any refusal counts as an error, as a non-201 does for ours
        return 1
    return 0


async def _finished_ours(bench: Bench, task_id: str) -> float | None:
    result = await bench.result(task_id)
    return await _close_time(bench, task_id) if result["state"] == "FINISHED" else None


async def _finished_plain(bench: Bench, task_id: str) -> float | None:
    return await _close_time(bench, task_id) if await bench.result(task_id) == STEPS else None


async def _close_time(bench: Bench, task_id: str) -> float | None:
    close = (await bench.describe(task_id)).close_time
    return close.timestamp() if close else None


def _with_finish(rate: Rate, close_times: list[float | None], began_at: float) -> Rate:
    done = [c for c in close_times if c is not None]
    rate.finished = len(done)
    rate.all_done_s = max(done) - began_at if done else float("nan")
    return rate
