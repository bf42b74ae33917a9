"""The W6 protocol's ideal: a lower bound on the makespan of N tasks of a protocol, from its steps'
durations, its nodes' capacities and its holds, whatever the scheduler. No schedule can beat it:

- one task's critical path (its longest chain of `after`s, waits included), and
- for each node, the time before any task can first reach it (the longest chain to the earliest step
  that takes it), then every task's use of it (each step that runs on it or holds it) spread over its
  capacity, then the time after the last such step (the longest chain from it to the end).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    id: str
    after: tuple[str, ...]
    takes: tuple[str, ...]  # its node and the nodes it holds; none for a wait
    duration_s: float


def steps_of(workflow: Mapping[str, Any]) -> list[Step]:
    """The steps of a workflows.json workflow written as a protocol (each with an `id`), their durations
    its own `args.sleep_s` (a wait: `wait_s`)."""
    steps: list[Step] = []
    for index, raw in enumerate(workflow["steps"]):
        after = raw.get("after", [steps[index - 1].id] if index else [])
        takes = (raw["node"], *raw.get("holds", [])) if "node" in raw else ()
        duration = raw["wait_s"] if "wait_s" in raw else raw.get("args", {}).get("sleep_s", 0.0)
        steps.append(Step(raw["id"], tuple(after), takes, float(duration)))
    return steps


def ideal_makespan_s(steps: list[Step], tasks: int, capacities: Mapping[str, int]) -> float:
    by_id = {s.id: s for s in steps}
    head: dict[str, float] = {}  # the earliest a step can start
    for step in steps:  # written in an order where each comes after steps above it
        head[step.id] = max((head[a] + by_id[a].duration_s for a in step.after), default=0.0)
    tail: dict[str, float] = {}  # the least time from a step's end to the task's end
    for step in reversed(steps):
        later = [s for s in steps if step.id in s.after]
        tail[step.id] = max((s.duration_s + tail[s.id] for s in later), default=0.0)
    bound = max(head[s.id] + s.duration_s + tail[s.id] for s in steps)
    for node in {n for s in steps for n in s.takes}:
        using = [s for s in steps if node in s.takes]
        busy = tasks * sum(s.duration_s for s in using) / capacities.get(node, 1)
        # With capacity c, the last c tasks' uses end together at best: the busy time counts whole rounds.
        rounds = math.ceil(tasks / capacities.get(node, 1)) * sum(s.duration_s for s in using)
        first = min(head[s.id] for s in using)
        last = min(tail[s.id] for s in using)
        bound = max(bound, first + max(busy, rounds) + last)
    return bound
