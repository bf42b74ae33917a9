"""Test drivers and helpers for the workflow tests: a real node class that sleeps, fails on demand,
can be held busy by the test, and writes down what it did in a journal the test reads.

Every test builds its own lab with unique node ids (the ledgers `node-<id>` live on a shared dev
server), so the journal, which is global, is always read filtered by the test's node ids.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory

from task_scheduler import BaseNode, LabConfig, NodeRef, StepResult, load_config
from task_scheduler.devserver import DevServer
from task_scheduler.engine.task_state import TaskResult
from task_scheduler.workflows.task import TaskWorkflow

T = TypeVar("T")

NODE_TYPE = "WorkflowTestNode"
HOLD_TIMEOUT_S = 30.0  # a held driver gives up after this, so a failed test cannot hang the worker


@dataclass(frozen=True)
class DriverRun:
    """One call of a test driver's `_execute`, timed by the driver itself (time.monotonic)."""

    node_id: str
    task_id: str
    args: dict[str, Any]
    started: float
    ended: float
    aborted: bool


class Journal:
    """What the test drivers did, and what the test asks of them; shared by every driver thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: list[DriverRun] = []
        self._started: list[tuple[str, str]] = []
        self.aborts: Counter[str] = Counter()
        self.restarts: Counter[str] = Counter()
        self.shutdowns: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._holds: dict[str, threading.Event] = {}
        self._restart_holds: dict[str, threading.Event] = {}
        self.unreachable: set[str] = set()  # nodes whose is_reachable() says False

    def runs(self, node_id: str | None = None, task_id: str | None = None) -> list[DriverRun]:
        with self._lock:
            runs = list(self._runs)
        return [r for r in runs if node_id in (None, r.node_id) and task_id in (None, r.task_id)]

    def started(self, node_id: str, task_id: str) -> bool:
        with self._lock:
            return (node_id, task_id) in self._started

    def fail_next(self, node_id: str, times: int = 1) -> None:
        """The node's next `times` steps fail with status 1."""
        with self._lock:
            self._failures[node_id] += times

    def hold(self, name: str) -> str:
        """A step with args {"hold": name} runs until `release(name)` (or an abort)."""
        with self._lock:
            self._holds[name] = threading.Event()
        return name

    def release(self, name: str) -> None:
        with self._lock:
            self._holds[name].set()

    def hold_restarts(self, node_id: str) -> None:
        """The node's restarts (`_restart()`) last until `release_restarts(node_id)`."""
        with self._lock:
            self._restart_holds[node_id] = threading.Event()

    def release_restarts(self, node_id: str) -> None:
        with self._lock:
            held = self._restart_holds.pop(node_id, None)
        if held is not None:
            held.set()

    def _restart_hold(self, node_id: str) -> threading.Event | None:
        with self._lock:
            return self._restart_holds.get(node_id)

    def _hold_event(self, name: str | None) -> threading.Event | None:
        with self._lock:
            return self._holds.get(name) if name else None

    def _begin(self, node_id: str, task_id: str) -> bool:
        """Note the start; True if this run must fail."""
        with self._lock:
            self._started.append((node_id, task_id))
            if self._failures[node_id] > 0:
                self._failures[node_id] -= 1
                return True
            return False

    def _record(self, run: DriverRun) -> None:
        with self._lock:
            self._runs.append(run)

    def _count(self, counter: Counter[str], node_id: str) -> None:
        with self._lock:
            counter[node_id] += 1


JOURNAL = Journal()


class WorkflowTestNode(BaseNode):
    """Sleeps `args["sleep_s"]` (or the property `sleep_s`), or until held/aborted; fails when asked
    (`args["fail"]`, or `JOURNAL.fail_next`); outputs which node ran and how many outputs it saw."""

    def __init__(self, id: str, name: str, properties: dict[str, Any] | None = None) -> None:
        super().__init__(id, name, properties)
        self._stop = threading.Event()

    def _execute(
        self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: dict[str, Any] | None = None
    ) -> StepResult:
        args = dict(args or {})
        started = time.monotonic()
        must_fail = JOURNAL._begin(self.id, task_id)
        self.logger.info("{} runs for {}", self.id, task_id)
        try:
            aborted = self._wait(args)
        finally:
            self._stop.clear()
        JOURNAL._record(DriverRun(self.id, task_id, args, started, time.monotonic(), aborted))
        if aborted:
            return StepResult(status=3, message=f"{self.id} aborted")
        if must_fail or args.get("fail"):
            return StepResult(status=1, message=f"{self.id} failed on purpose")
        seen = args.get("previous_output", {}).get("seen", -1) + 1  # the steps before, in a chain
        output: dict[str, Any] = {"node": self.id, "seen": seen}
        if args.get("output_bytes"):
            output["blob"] = "x" * int(args["output_bytes"])
        return StepResult(message=f"{self.id} done", output=output)

    def _wait(self, args: dict[str, Any]) -> bool:
        """Sleep or stay held; True if aborted meanwhile."""
        held = JOURNAL._hold_event(args.get("hold"))
        if held is None:
            sleep_s = float(args.get("sleep_s", self.properties.get("sleep_s", 0.0)))
            return self._stop.wait(sleep_s)
        deadline = time.monotonic() + HOLD_TIMEOUT_S
        while not held.is_set() and time.monotonic() < deadline:
            if self._stop.wait(0.005):
                return True
        return False

    def _abort(self) -> None:
        JOURNAL._count(JOURNAL.aborts, self.id)
        self._stop.set()

    def _restart(self) -> bool:
        JOURNAL._count(JOURNAL.restarts, self.id)
        held = JOURNAL._restart_hold(self.id)
        if held is not None:
            held.wait(HOLD_TIMEOUT_S)
        return True

    def is_reachable(self) -> bool:
        return self.id not in JOURNAL.unreachable

    def _shutdown(self) -> None:
        JOURNAL._count(JOURNAL.shutdowns, self.id)


@dataclass
class TestLab:
    """A lab written to disk for one test: nodes `a`, `b`... get unique ids, workflows unique names."""

    config: LabConfig
    folder: Path
    suffix: str
    node_ids: dict[str, str] = field(default_factory=dict)

    __test__ = False  # not a test class, despite its name

    def node(self, short: str) -> str:
        return self.node_ids[short]

    def workflow(self, short: str) -> str:
        return f"{short}-{self.suffix}"

    @property
    def nodes_file(self) -> Path:
        return self.folder / "nodes.json"

    @property
    def workflows_file(self) -> Path:
        return self.folder / "workflows.json"


MakeLab = Callable[..., TestLab]  # the `make_lab` fixture
StartTask = Callable[..., Awaitable[WorkflowHandle[TaskWorkflow, TaskResult]]]  # the `start_task` fixture


def write_lab(
    folder: Path,
    workflows: dict[str, list[Any]],
    nodes: dict[str, dict[str, Any]] | None = None,
) -> TestLab:
    """Write nodes.json and workflows.json: every node named in a step (a short name, or a step
    object's "node"; a wait names none) is a WorkflowTestNode; `nodes` adds or overrides node fields."""
    suffix = uuid.uuid4().hex[:8]
    nodes = dict(nodes or {})
    for steps in workflows.values():
        for step in steps:
            if isinstance(step, str) or "node" in step:
                nodes.setdefault(step if isinstance(step, str) else step["node"], {})
    ids = {short: f"{short}-{suffix}" for short in nodes}
    node_list = [
        {"id": ids[short], "name": f"node {short}", "type": NODE_TYPE, **extra}
        for short, extra in nodes.items()
    ]
    workflow_list = [
        {"name": f"{name}-{suffix}", "steps": [_step(step, ids) for step in steps]}
        for name, steps in workflows.items()
    ]
    folder.mkdir(parents=True, exist_ok=True)
    # The node module is named, so a worker in another process (the CLI) finds the test driver too.
    modules = [str(Path(__file__).resolve())]
    (folder / "nodes.json").write_text(json.dumps({"nodes": node_list, "modules": modules}, indent=2))
    (folder / "workflows.json").write_text(json.dumps({"workflows": workflow_list}, indent=2))
    config = load_config(folder / "nodes.json", folder / "workflows.json")
    return TestLab(config=config, folder=folder, suffix=suffix, node_ids=ids)


def _step(step: Any, ids: dict[str, str]) -> Any:
    if isinstance(step, str):
        return ids[step]
    if "node" not in step:
        return step
    holds = {"holds": [ids[h] for h in step["holds"]]} if "holds" in step else {}
    return {**step, "node": ids[step["node"]], **holds}


def unique_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def wait_until(
    probe: Callable[[], Awaitable[T] | T],
    timeout_s: float = 15.0,
    what: str = "the condition",
    interval_s: float = 0.02,
) -> T:
    """Poll `probe` (sync or async) until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if asyncio.iscoroutine(last) or isinstance(last, asyncio.Future):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last value: {last!r})")


def scheduled_activities(history: WorkflowHistory) -> list[Any]:
    """The ActivityTaskScheduled events' attributes, in order."""
    return [
        event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def summaries(history: WorkflowHistory) -> list[str]:
    """The summaries (user metadata) of the scheduled activities, as the Temporal UI shows them."""
    return [
        json.loads(event.user_metadata.summary.data)
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def start_worker(
    lab: TestLab, server: DevServer, task_queue: str, log: Path, *options: str
) -> subprocess.Popen[bytes]:
    """`task-scheduler worker` on the lab, as a process of its own (`options`: `--name PC`...), its output
    in `log`; stopped by `kill` (the `worker_processes` fixture kills those it lists)."""
    command = [
        *[sys.executable, "-m", "task_scheduler", "worker", *options],
        *["-n", str(lab.nodes_file), "-w", str(lab.workflows_file)],
        *["--address", server.address, "--task-queue", task_queue],
    ]
    with log.open("wb") as sink:
        return subprocess.Popen(
            command, cwd=lab.folder, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
        )


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL by pid, as a crash would; reaped at once (a dead worker's pollers are then not live)."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
