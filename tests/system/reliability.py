"""Helpers of the reliability tests (faults, soak): `task-scheduler api` and `task-scheduler worker` as
subprocesses, each killed with SIGKILL by its own pid (and started again on the same port); an operator
that continues every task stopped in ERROR through the API; waits with deadlines; resident memory."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any, TypeVar

import httpx

from task_scheduler.api.security import Role, create_token
from task_scheduler.devserver import free_port

T = TypeVar("T")

BINARY = Path(sys.executable).parent / "task-scheduler"
READY_TIMEOUT_S = 30.0
# What a client may meet while a process is down or restarting: no answer, or Temporal unreachable.
OUTAGE = (httpx.TransportError,)
SERIAL = itertools.count(1)  # output files are never reused, whichever process writes them


def environment(**extra: str) -> dict[str, str]:
    """This environment without the developer's task_scheduler or Temporal settings, plus `extra`."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("TASK_SCHEDULER_", "TEMPORAL_"))}
    return {**kept, **extra}


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], what: str, timeout_s: float, interval_s: float = 0.1
) -> T:
    """Poll `probe` until it returns something truthy; fail with the last value after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = await probe()
        except OUTAGE as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval_s)


@dataclass
class Process:
    """A `task-scheduler` subprocess in a session of its own, with its output in a file."""

    command: list[str]
    cwd: Path
    output_dir: Path
    name: str
    env: dict[str, str] = field(default_factory=environment)
    process: subprocess.Popen[bytes] | None = None
    output: Path | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, f"{self.name} runs already"
        self.output = self.output_dir / f"{self.name}-{next(SERIAL)}.log"
        with self.output.open("wb") as sink:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL by pid, as a crash would; reaped at once."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        exists = self.output is not None and self.output.exists()
        text = self.output.read_text(errors="replace") if self.output and exists else "(no output)"
        return "\n".join(text.splitlines()[-lines:])


def worker_process(
    nodes_file: Path, workflows_file: Path, address: str, task_queue: str, output_dir: Path
) -> Process:
    """`task-scheduler worker` hosting every node of the lab and running its workflows."""
    command = [
        str(BINARY),
        "worker",
        *["-n", str(nodes_file), "-w", str(workflows_file)],
        *["--address", address, "--task-queue", task_queue],
    ]
    return Process(command, cwd=nodes_file.parent, output_dir=output_dir, name="worker")


@dataclass
class ApiProcess:
    """`task-scheduler api` on a port of its own, which it keeps across restarts."""

    process: Process
    secret: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, role: str = "admin") -> str:
        return create_token(self.secret, f"reliability-{role}", Role[role], 3600)

    def client(self, role: str = "admin", timeout_s: float = 30) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token(role)}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout_s)

    async def start(self) -> None:
        """Start it and wait until it answers and reaches Temporal (GET /health is 200)."""
        self.process.start()

        async def healthy() -> bool:
            if not self.process.alive():
                raise AssertionError(f"the API exited:\n{self.process.tail()}")
            async with httpx.AsyncClient(timeout=5) as http:
                return (await http.get(f"{self.url}/health")).status_code == 200

        await wait_for(healthy, "the API to answer", READY_TIMEOUT_S)

    def kill(self) -> None:
        self.process.kill()


def api_process(
    nodes_file: Path, workflows_file: Path, address: str, task_queue: str, output_dir: Path
) -> ApiProcess:
    secret = secrets.token_hex(32)
    port = free_port()
    command = [
        str(BINARY),
        "api",
        *["-n", str(nodes_file), "-w", str(workflows_file)],
        *["--address", address, "--task-queue", task_queue],
        *["--host", "127.0.0.1", "--port", str(port)],
    ]
    process = Process(
        command,
        cwd=nodes_file.parent,
        output_dir=output_dir,
        name="api",
        env=environment(TASK_SCHEDULER_SECRET=secret),
    )
    return ApiProcess(process, secret, port)


async def all_nodes_hosted(http: httpx.AsyncClient, node_ids: list[str], timeout_s: float = 30) -> None:
    async def hosted() -> bool:
        response = await http.get("/health")
        nodes = response.json().get("nodes", {}) if response.status_code == 200 else {}
        return all(nodes.get(node_id) for node_id in node_ids)

    await wait_for(hosted, f"a worker hosting {node_ids}", timeout_s)


async def tasks_in_state(http: httpx.AsyncClient, state: str) -> list[dict[str, Any]]:
    """Every task of the API's queue in `state` (visibility), all pages."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params = {"state": state, "page_size": 1000, **({"page_token": token} if token else {})}
        response = await http.get("/tasks", params=params)
        response.raise_for_status()
        page = response.json()
        found += page["tasks"]
        token = page["next_page_token"]
        if not token:
            return found


@dataclass
class Operator:
    """The lab's operator, through the API: continues every task stopped in ERROR, with `retry` or (at
    the rate given) `next`. Counts its continues per (task, node) and per mode."""

    http: httpx.AsyncClient
    next_rate: float = 0.0
    interval_s: float = 0.2
    seed: int = 5
    continued: Counter[tuple[str, str]] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)

    async def run(self) -> None:
        """Until cancelled; an API or Temporal that is down is waited out."""
        choose = Random(self.seed)
        while True:
            try:
                for task in await tasks_in_state(self.http, "ERROR"):
                    await self._continue(task, "next" if choose.random() < self.next_rate else "retry")
            except (*OUTAGE, httpx.HTTPStatusError):
                pass
            await asyncio.sleep(self.interval_s)  # the operator's pace, not a wait for a condition

    async def _continue(self, task: dict[str, Any], mode: str) -> None:
        response = await self.http.post(f"/tasks/{task['task_id']}/continue", json={"mode": mode})
        if response.status_code == 200:  # 409: listed as ERROR a moment ago, no longer
            self.continued[(task["task_id"], task["current_node"])] += 1
            self.modes[mode] += 1


def rss_bytes(pid: int) -> int:
    """The resident memory of a process (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
