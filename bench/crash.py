"""W4 crash: tasks with 2 s steps, the worker SIGKILLed after 3 s and restarted at once. The bench acts
as the operator: a task in ERROR because its worker was lost is continued with mode retry. Then: did
every task finish, and did any step run twice without an operator's continue (never, on one-attempt
nodes), and how much time did the crash cost against the same run without one."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
from context import Bench, ideal_makespan_s
from measure import makespan_s, read_uses, runs_per_step
from report import Row

OPERATOR_POLL_S = 0.5
DEADLINE_S = 300.0


async def w4_crash(bench: Bench) -> None:
    tasks, sleep_s = bench.params.w4_tasks, bench.params.w4_sleep_s
    reference = await _run(bench, "w4r", crash=False)
    crashed = await _run(bench, "w4c", crash=True)
    uses = read_uses(bench.stack.drivers_log, "w4c-")
    twice = sum(max(0, n - 1 - crashed.continues[key]) for key, n in runs_per_step(uses).items())
    reference_s = makespan_s(read_uses(bench.stack.drivers_log, "w4r-"))
    crash_s = makespan_s(uses)
    bench.add(
        Row(
            "W4 tasks finished after the crash",
            f"{crashed.finished}/{tasks}",
            f"{reference.finished}/{tasks}",
        ),
        Row("W4 steps run twice without an operator's continue", twice),
        Row("W4 operator continues (worker lost)", sum(crashed.continues.values())),
        Row("W4 makespan, crash vs no crash", crash_s, reference_s, "s"),
        Row("W4 time lost to the crash", crash_s - reference_s, None, "s"),
        Row("W4 makespan without crash vs ideal", reference_s, ideal_makespan_s(tasks, sleep_s), "s"),
    )
    if crashed.unexpected:
        print(f"  W4: tasks stopped for another reason: {crashed.unexpected}", flush=True)


class Outcome:
    def __init__(self) -> None:
        self.continues: Counter[tuple[str, int]] = Counter()  # (task, step 1..5): operator continues
        self.finished = 0
        self.unexpected: dict[str, str] = {}


async def _run(bench: Bench, prefix: str, crash: bool) -> Outcome:
    ids = [f"{prefix}-{i:02d}" for i in range(bench.params.w4_tasks)]
    began = time.perf_counter()
    statuses = await asyncio.gather(*(bench.start_ours(t, bench.params.w4_sleep_s) for t in ids))
    if any(status != 201 for status in statuses):
        raise RuntimeError(f"W4: some starts were refused: {statuses}")
    if crash:
        await asyncio.sleep(max(0.0, bench.params.w4_kill_after_s - (time.perf_counter() - began)))
        bench.stack.proc("worker").kill()
        print(
            f"  W4: worker SIGKILLed {time.perf_counter() - began:.1f} s after the starts; restarted",
            flush=True,
        )
        bench.stack.start_worker()
    return await _operate(bench, ids)


async def _operate(bench: Bench, ids: list[str]) -> Outcome:
    """Look at every unfinished task; continue (retry) those stopped because their worker was lost."""
    outcome, pending = Outcome(), set(ids)
    deadline = time.monotonic() + DEADLINE_S
    while pending and time.monotonic() < deadline:
        shown = await asyncio.gather(*(_show(bench, task_id) for task_id in sorted(pending)))
        for task in filter(None, shown):
            await _decide(bench, task, outcome, pending)
        await asyncio.sleep(OPERATOR_POLL_S)
    outcome.unexpected.update({task_id: "not finished in time" for task_id in pending})
    return outcome


async def _show(bench: Bench, task_id: str) -> dict[str, Any] | None:
    try:
        return await bench.api("GET", f"/tasks/{task_id}")  # type: ignore[no-any-return]
    except httpx.HTTPError:
        return None  # the worker is restarting: ask again at the next round


async def _decide(bench: Bench, task: dict[str, Any], outcome: Outcome, pending: set[str]) -> None:
    task_id, state, reason = task["task_id"], task["state"], task.get("reason") or ""
    if state == "FINISHED":
        outcome.finished += 1
        pending.discard(task_id)
    elif state == "ERROR" and ("worker lost" in reason or "cut off" in reason):  # once accounted: cut off
        try:
            await bench.api("POST", f"/tasks/{task_id}/continue", {"mode": "retry"})
        except httpx.HTTPStatusError:
            return  # refused (its state changed meanwhile): look again next round
        outcome.continues[(task_id, task["current_step"] + 1)] += 1
    elif state in ("ERROR", "CANCELLED") and task.get("live"):
        outcome.unexpected[task_id] = f"{state}: {reason}"
        pending.discard(task_id)
