"""A lab workflow as a protocol: the graph of its steps, and its check with located problems.

A step has an id (given, or its number from 1: "1", "2", ...) and the steps it comes after (`after`;
without it, the step before it), so every workflows.json written as a line of steps is read as that
line. A step runs on a node (`node`, holding the nodes of `holds` with it) or waits (`wait_s`, or
`wait_until`: an ISO time or a time of day HH:MM). Pure: the task's rules over it are in `book.py`.
"""

from __future__ import annotations

import graphlib
import re
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime, time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .config import WorkflowConfig
from .errors import ConfigError, ConfigProblem

MAX_WAIT_S = 30 * 24 * 3600  # a longer wait is a typo (minutes for seconds), not a protocol
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?")
WAIT_UNTIL_FORMS = "an ISO time such as 2025-06-01T14:30 (a time zone may follow) or a time of day HH:MM"


class StepKind(StrEnum):
    NODE = "node"  # its node's driver runs it
    WAIT = "wait"  # a timer in the task, on no node


class ProtocolStep(BaseModel):
    """One step of a protocol: its id, the steps it comes after, and what it does."""

    model_config = ConfigDict(frozen=True)

    id: str
    index: int  # its place in the workflow, from 0
    after: tuple[str, ...] = ()
    node: str | None = None
    holds: tuple[str, ...] = ()
    wait_s: float | None = None
    wait_until: str | None = None

    @property
    def kind(self) -> StepKind:
        return StepKind.NODE if self.node is not None else StepKind.WAIT


class Protocol(BaseModel):
    """A workflow's steps in its order, each naming the steps it comes after (a graph with no cycle)."""

    model_config = ConfigDict(frozen=True)

    steps: tuple[ProtocolStep, ...]
    _by_id: dict[str, ProtocolStep] = PrivateAttr(default_factory=dict)
    _successors: dict[str, tuple[str, ...]] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        self._by_id = {s.id: s for s in self.steps}
        following: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for step in self.steps:
            for before in step.after:
                following[before].append(step.id)
        self._successors = {step_id: tuple(after) for step_id, after in following.items()}

    def step(self, step_id: str) -> ProtocolStep:
        return self._by_id[step_id]

    def has(self, step_id: str) -> bool:
        return step_id in self._by_id

    def successors(self, step_id: str) -> tuple[str, ...]:
        """The steps that come right after this one, in the protocol's order."""
        return self._successors[step_id]

    def ids(self) -> list[str]:
        return [s.id for s in self.steps]


class _Links(BaseModel):
    """A step's place in the graph, as written (the step's other keys are StepConfig's)."""

    id: str | None = Field(default=None, min_length=1)
    after: list[str] | None = None


class _Action(BaseModel):
    """What a step does, as written."""

    node: str | None = Field(default=None, min_length=1)
    holds: list[str] = Field(default_factory=list)
    wait_s: float | None = Field(default=None, strict=True)  # "600" or true is a typo, not a wait
    wait_until: str | None = None


def parse_wait_until(text: str) -> datetime | time | None:
    """A `wait_until`: an ISO date and time (naive: the lab's local time), a time of day, or None."""
    if _TIME_OF_DAY.fullmatch(text):
        return time.fromisoformat(text)
    try:
        return datetime.fromisoformat(text) if "T" in text or " " in text.strip() else None
    except ValueError:
        return None


def protocol_of(workflow: WorkflowConfig, path: str = "$.steps", file: str = "workflows.json") -> Protocol:
    """The protocol of a configured workflow (today's steps: a line); `path` locates its steps in `file`
    (`$.workflows[i].steps`)."""
    steps = [step.model_dump(exclude_none=True) for step in workflow.steps]
    return read_protocol(steps, file=file, path=path)


def read_protocol(
    steps: Sequence[Any], node_ids: Collection[str] | None = None, *, file: str, path: str
) -> Protocol:
    """The protocol of one workflow's steps as written; ConfigError lists every problem."""
    check = ProtocolCheck(file, path, node_ids)
    protocol = check.read(steps)
    if check.problems or protocol is None:
        raise ConfigError(check.problems)
    return protocol


def read_protocols(
    workflows: Sequence[Any],
    nodes: Sequence[Any],
    *,
    workflows_file: str = "workflows.json",
    nodes_file: str = "nodes.json",
) -> dict[str, Protocol]:
    """The protocol of each workflow, by name, from both files as written (node capacities included):
    every protocol, or a ConfigError with every problem of both files and none of them."""
    problems = capacity_problems(nodes, nodes_file)
    node_ids = {n["id"] for n in nodes if isinstance(n, dict) and isinstance(n.get("id"), str)}
    protocols: dict[str, Protocol] = {}
    for index, workflow in enumerate(workflows):
        if not isinstance(workflow, dict) or not isinstance(workflow.get("steps"), list):
            continue  # the loader's own check says what is wrong with it
        check = ProtocolCheck(workflows_file, f"$.workflows[{index}].steps", node_ids)
        protocol = check.read(workflow["steps"])
        problems += check.problems
        if protocol is not None:
            protocols[str(workflow.get("name"))] = protocol
    if problems:
        raise ConfigError(problems)
    return protocols


def capacity_problems(nodes: Sequence[Any], file: str = "nodes.json") -> list[ConfigProblem]:
    """A node's `capacity` (how many steps may hold it at once, 1 if not given) is a whole number, 1 or
    more."""
    problems = []
    for index, node in enumerate(nodes):
        capacity = node.get("capacity", 1) if isinstance(node, dict) else 1
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            message = (
                f"capacity must be a whole number of steps that may hold the node at once, 1 or more, "
                f"got {capacity!r}; leave it out for a node that serves one step at a time"
            )
            problems.append(ConfigProblem(file, f"$.nodes[{index}].capacity", message))
    return problems


class ProtocolCheck:
    """One workflow's steps read into a protocol, every problem found kept with its place."""

    def __init__(self, file: str, path: str, node_ids: Collection[str] | None = None) -> None:
        self.file, self.path = file, path
        self.node_ids = node_ids  # None: the nodes named are not checked here
        self.problems: list[ConfigProblem] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.file, f"{self.path}{where}", message))

    def read(self, raw_steps: Sequence[Any]) -> Protocol | None:
        """The protocol, or None if a problem was found."""
        before = len(self.problems)
        raw = [{"node": s} if isinstance(s, str) else s for s in raw_steps]
        links = [self._parse(i, step, _Links) for i, step in enumerate(raw)]
        actions = [self._parse(i, step, _Action) for i, step in enumerate(raw)]
        ids = [_id_of(i, link) for i, link in enumerate(links)]
        after = [_after_of(i, link, ids) for i, link in enumerate(links)]
        self._check_ids(links, ids)
        self._check_after(links, ids)
        if not _duplicates(ids):  # with two steps of one id, which one a cycle goes through is unclear
            self._check_cycles(ids, after, links)
        for index, action in enumerate(actions):
            if isinstance(action, _Action):
                self._check_action(index, action)
        if len(self.problems) > before:
            return None
        steps = [
            ProtocolStep(id=ids[i], index=i, after=after[i], **action.model_dump())
            for i, action in enumerate(actions)
            if isinstance(action, _Action)
        ]
        return Protocol(steps=tuple(steps))

    def _parse(self, index: int, raw: Any, model: type[BaseModel]) -> Any:
        if not isinstance(raw, dict):
            if model is _Links:  # said once per step
                self.problem(f"[{index}]", f"a step is a node id or an object, got {raw!r}")
            return None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
                self.problem(f"[{index}]{where}", f"{error['msg']} (got {error.get('input')!r})")
            return None

    def _check_ids(self, links: list[_Links | None], ids: list[str]) -> None:
        duplicated = _duplicates(ids)
        for index, step_id in enumerate(ids):
            if step_id not in duplicated:
                continue
            others = ", ".join(f"steps[{i}]" for i, o in enumerate(ids) if o == step_id and i != index)
            link = links[index]
            if link is not None and link.id is not None:
                self.problem(f"[{index}].id", f"duplicate step id {step_id!r} (also at {others})")
            else:
                message = (
                    f"this step has no id, so its id is its number {step_id!r}, which {others} has too: "
                    "give one of them another id"
                )
                self.problem(f"[{index}]", message)

    def _check_after(self, links: list[_Links | None], ids: list[str]) -> None:
        known, listed = set(ids), ", ".join(dict.fromkeys(ids)) or "none"
        for index, link in enumerate(links):
            for position, name in enumerate((link.after or []) if link else []):
                where = f"[{index}].after[{position}]"
                if name == ids[index]:
                    self.problem(where, f"step {name!r} names itself: a step cannot come after itself")
                elif name not in known:
                    self.problem(where, f"unknown step {name!r}; steps of this workflow: {listed}")

    def _check_cycles(self, ids: list[str], after: list[tuple[str, ...]], links: list[Any]) -> None:
        """Each cycle of `after`s, named by its steps (each comes after the one before it); a cycle is
        taken out of the graph once named, so the next one shows."""
        known = set(ids)
        graph = {ids[i]: {a for a in after[i] if a in known and a != ids[i]} for i in range(len(ids))}
        while True:
            try:
                graphlib.TopologicalSorter(graph).prepare()
                return
            except graphlib.CycleError as found:
                cycle = list(found.args[1][:-1])
            first = min(cycle, key=ids.index)
            cycle = cycle[cycle.index(first) :] + cycle[: cycle.index(first)]
            index = ids.index(first)
            circle = " -> ".join(repr(s) for s in [*cycle, first])
            message = (
                f"steps {circle} form a circle (each comes after the one before it; a step without `after` "
                "comes after the step above it): none of them could start; remove one of these links"
            )
            self.problem(f"[{index}].after" if links[index] and links[index].after else f"[{index}]", message)
            for step_id in cycle:
                graph.pop(step_id)

    def _check_action(self, index: int, action: _Action) -> None:
        where = f"[{index}]"
        waits = [key for key in ("wait_s", "wait_until") if getattr(action, key) is not None]
        if action.node is not None and waits:
            self.problem(where, f"a step runs on a node or waits, not both: remove `node` or `{waits[0]}`")
        elif action.node is None and not waits:
            self.problem(where, "a step names the `node` it runs on, or waits (`wait_s` or `wait_until`)")
        if len(waits) > 1:
            self.problem(where, "a step waits `wait_s` seconds or `wait_until` a time, not both")
        if action.holds and action.node is None:
            self.problem(f"{where}.holds", "only a step that runs on a `node` holds other nodes with it")
        self._check_holds(where, action)
        self._check_wait(where, action)

    def _check_holds(self, where: str, action: _Action) -> None:
        known = ", ".join(sorted(self.node_ids or [])) or "none"
        for position, node in enumerate(action.holds):
            if node in action.holds[:position]:
                self.problem(f"{where}.holds[{position}]", f"node {node!r} is listed twice: keep one")
            elif node == action.node:
                message = f"the step runs on {node!r}, which it holds anyway: remove it from holds"
                self.problem(f"{where}.holds[{position}]", message)
            elif self.node_ids is not None and node not in self.node_ids:
                self.problem(f"{where}.holds[{position}]", f"unknown node {node!r}; known nodes: {known}")

    def _check_wait(self, where: str, action: _Action) -> None:
        if action.wait_s is not None and not 0 <= action.wait_s <= MAX_WAIT_S:
            message = f"wait_s must be from 0 to {MAX_WAIT_S} seconds (30 days), got {action.wait_s:g}"
            self.problem(f"{where}.wait_s", message)
        if action.wait_until is not None and parse_wait_until(action.wait_until) is None:
            message = f"wait_until must be {WAIT_UNTIL_FORMS}, got {action.wait_until!r}"
            self.problem(f"{where}.wait_until", message)


def step_name(index: int, given: str | None) -> str:
    """A step's id: the one it is given, else its number from 1 (every workflow written before steps
    had ids names its steps so)."""
    return given if given else str(index + 1)


def step_after(index: int, given: Sequence[str] | None, ids: Sequence[str]) -> tuple[str, ...]:
    """The steps it comes after: its `after`, else the step before it (none for the first)."""
    if given is not None:
        return tuple(dict.fromkeys(given))
    return (ids[index - 1],) if index > 0 else ()


def _id_of(index: int, link: _Links | None) -> str:
    return step_name(index, link.id if link is not None else None)


def _after_of(index: int, link: _Links | None, ids: list[str]) -> tuple[str, ...]:
    return step_after(index, link.after if link is not None else None, ids)


def _duplicates(values: list[str]) -> set[str]:
    return {value for value, count in Counter(values).items() if count > 1}
