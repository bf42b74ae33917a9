"""The crash tests' lab: a node class (written to disk, imported by the worker subprocess) that logs
every driver start and end with the worker's pid, the log's reader, and a worker subprocess handle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from task_scheduler import LabConfig

WORKER_BINARY = Path(sys.executable).parent / "task-scheduler"

# Imported by the worker subprocess through nodes.json `modules`: a fake driver is a real node class
# that sleeps. Each line: "<event> <task id> <node id> <worker pid> <unix time>".
CRASH_NODES = '''
"""Nodes of the crash tests: sleep `sleep_s` (task args, else node properties), log start and end."""

import os
import time

from task_scheduler import BaseNode, StepResult


class CrashTestSleeper(BaseNode):
    def _execute(self, src, dst, task_id, args=None):
        args = args or {}
        self._log("start", task_id)
        deadline = time.monotonic() + float(args.get("sleep_s", self.properties.get("sleep_s", 0.1)))
        while time.monotonic() < deadline:
            if self.abort_requested:
                self._log("aborted", task_id)
                return 1, "aborted", None
            time.sleep(0.02)
        self._log("end", task_id)
        return StepResult(status=0, message="slept", output={"pid": os.getpid()})

    def _log(self, event, task_id):
        with open(self.properties["log"], "a", encoding="utf-8") as log:
            log.write(f"{event} {task_id} {self.id} {os.getpid()} {time.time():.3f}\\n")
'''


@dataclass(frozen=True)
class DriverEvent:
    event: str
    task_id: str
    node_id: str
    pid: int
    at: float


@dataclass
class CrashLab:
    """A lab on disk (nodes.json, workflows.json, crash_nodes.py) and the log its drivers write."""

    folder: Path
    lab: LabConfig
    log: Path

    @property
    def nodes_file(self) -> Path:
        return self.folder / "nodes.json"

    @property
    def workflows_file(self) -> Path:
        return self.folder / "workflows.json"

    def events(self) -> list[DriverEvent]:
        if not self.log.exists():
            return []
        rows = [line.split() for line in self.log.read_text(encoding="utf-8").splitlines() if line]
        return [DriverEvent(e, t, n, int(p), float(at)) for e, t, n, p, at in rows]

    def starts(self, task_id: str, node_id: str | None = None) -> list[DriverEvent]:
        """How many times a task's step driver STARTED (on one node, or any)."""
        return [
            e
            for e in self.events()
            if e.event == "start" and e.task_id == task_id and node_id in (None, e.node_id)
        ]


MakeLab = Callable[..., CrashLab]


def crash_node(node_id: str, log: Path, extensions: dict[str, Any]) -> dict[str, Any]:
    properties = {"log": str(log), **extensions.get("properties", {})}
    node = {"id": node_id, "name": f"crash test node {node_id}", "type": "CrashTestSleeper"}
    return {**node, **extensions, "properties": properties}


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    output: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def freeze(self) -> None:
        """SIGSTOP: the process, its driver and its heartbeats stand still, as a PC cut off would look
        to the server; `thaw` lets it go on where it was."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL by pid, as a crash would; reaped at once."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def output_tail(self, lines: int = 40) -> str:
        text = self.output.read_text(encoding="utf-8", errors="replace") if self.output.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


StartWorker = Callable[..., WorkerProcess]  # (lab, address, task_queue, *worker options)
