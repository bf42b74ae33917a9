"""Figures from the drivers' logs: makespans, node hand-offs, overlaps, double runs; and small stats."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Use:
    """One driver run: a task's step on a node, from its start line to its end line."""

    task_id: str
    node: str
    step: int
    n: int
    pid: int
    start: float
    end: float | None


def read_uses(log: Path, prefix: str) -> list[Use]:
    """The driver runs of the tasks whose id starts with `prefix` (an end line closes its start)."""
    starts: dict[tuple[str, int, int], tuple[float, str, int]] = {}
    ends: dict[tuple[str, int, int], float] = {}
    for line in log.read_text(encoding="utf-8").splitlines() if log.exists() else []:
        event, at, task_id, node, step, n, pid = line.split()
        if not task_id.startswith(prefix):
            continue
        key = (task_id, int(step), int(n))
        if event == "start":
            starts[key] = (float(at), node, int(pid))
        else:
            ends[key] = float(at)
    return [
        Use(task_id, node, step, n, pid, at, ends.get((task_id, step, n)))
        for (task_id, step, n), (at, node, pid) in starts.items()
    ]


def makespan_s(uses: list[Use]) -> float:
    """First driver start to last driver end."""
    return max(u.end or u.start for u in uses) - min(u.start for u in uses)


@dataclass(frozen=True)
class HandOffs:
    latencies_s: list[float]
    overlaps: int  # a node serving two steps at once: must be 0 for ours


def hand_offs(uses: list[Use]) -> HandOffs:
    """Per node, one use's end to the next use's start, counted when the next step was already
    waiting for the node (its task's previous step had ended, or it is a first step): the time the
    node stood idle between two tasks only because of the scheduler."""
    ended = {(u.task_id, u.step): u.end for u in uses if u.end is not None}
    by_node: dict[str, list[Use]] = defaultdict(list)
    for use in uses:
        by_node[use.node].append(use)
    latencies, overlaps = [], 0
    for node_uses in by_node.values():
        node_uses.sort(key=lambda u: u.start)
        for before, after in itertools.pairwise(node_uses):
            end = before.end if before.end is not None else float("inf")
            if after.start < end:
                overlaps += 1
            elif _was_waiting(after, end, ended):
                latencies.append(after.start - end)
    return HandOffs(latencies, overlaps)


def _was_waiting(use: Use, since: float, ended: dict[tuple[str, int], float]) -> bool:
    previous_end = ended.get((use.task_id, use.step - 1))
    return use.step == 1 or (previous_end is not None and previous_end <= since)


def runs_per_step(uses: list[Use]) -> Counter[tuple[str, int]]:
    return Counter((u.task_id, u.step) for u in uses)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): with 20 samples, p95 is the 19th smallest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]
