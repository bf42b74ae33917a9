"""The bench's own stack: a Temporal dev server started as `task-scheduler dev` starts it, and the
`task-scheduler worker`, `task-scheduler api` and baseline worker as subprocesses, so their peak RSS
(VmHWM) and CPU time can be read from /proc apart from the bench driver's own."""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import baseline
import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from task_scheduler.api.security import Role, create_token
from task_scheduler.devserver import DevServer, free_port
from task_scheduler.readers.pollers import live_pollers

BENCH = Path(__file__).resolve().parent
LAB = BENCH / "lab"
BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _die_with_parent() -> None:
    """A crashed bench leaves no worker or API behind (Linux; the dev server does the same)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Proc:
    """A subprocess of the bench, started and stopped by its own pid."""

    name: str
    command: list[str]
    log: Path
    cwd: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        # From the main thread only: the death signal follows the thread that forked the child.
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash; reaped at once (a zombie's pid would still look alive to a new worker)."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        if self.process is not None:
            self.process.wait()

    def stop(self, grace_s: float = 10.0) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            try:
                self.process.wait(timeout=grace_s)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                self.kill()


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so a peak is the peak of one workload."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((row for row in status.splitlines() if row.startswith("VmHWM:")), None)
    return int(line.split()[1]) / 1024 if line else None


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def clean_environment(**extra: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("TASK_SCHEDULER_", "TEMPORAL_"))}
    return {**kept, **extra}


@dataclass
class BenchStack:
    run_dir: Path
    server: DevServer = field(init=False)
    api_port: int = field(default_factory=free_port)
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    procs: dict[str, Proc] = field(default_factory=dict)
    client: Client | None = None
    worker_starts: int = 0
    trace: bool = False  # run the worker as bench/traced_worker.py (step phases timed)

    def __post_init__(self) -> None:
        # As `task-scheduler dev` starts it: a SQLite file, the UI on a port, DEV_SERVER_DYNAMIC_CONFIG.
        self.server = DevServer(
            db_file=self.run_dir / "temporal.db",
            port=free_port(),
            ui_port=free_port(),
            log_file=self.run_dir / "temporal.log",
        )
        self.token = create_token(self.secret, "bench", Role.operator, 24 * 3600)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def drivers_log(self) -> Path:
        return self.run_dir / "drivers.log"

    @property
    def plain_log(self) -> Path:
        return self.run_dir / "plain.log"

    def proc(self, name: str) -> Proc:
        return self.procs[name]

    async def start(self) -> None:
        self.server.start()
        await self.server.wait_ready()
        self.client = await Client.connect(self.server.address, data_converter=pydantic_data_converter)
        self.start_worker()
        self._start(
            "api", [str(BIN / "task-scheduler"), "api", *self._lab_args(), "--port", str(self.api_port)]
        )
        self._start(
            "baseline", [sys.executable, str(BENCH / "baseline.py"), "--address", self.server.address]
        )
        await self.wait_ready()

    def _lab_args(self) -> list[str]:
        return [
            "-n",
            str(LAB / "nodes.json"),
            "-w",
            str(LAB / "workflows.json"),
            "--address",
            self.server.address,
        ]

    def _start(self, name: str, command: list[str]) -> Proc:
        env = clean_environment(
            TASK_SCHEDULER_SECRET=self.secret, BENCH_TRACE=str(self.run_dir / "trace.log")
        )
        proc = Proc(name, command, self.run_dir / f"{name}.out", self.run_dir, env)
        proc.start()
        self.procs[name] = proc
        return proc

    def start_worker(self) -> Proc:
        """`task-scheduler worker` hosting node-1..node-5 and running the workflows (again after a kill)."""
        self.worker_starts += 1
        program = (
            [sys.executable, str(BENCH / "traced_worker.py")] if self.trace else [str(BIN / "task-scheduler")]
        )
        return self._start("worker", [*program, "worker", *self._lab_args(), "--grace-s", "5"])

    async def wait_ready(self) -> None:
        """The API answers, a worker hosts every node, and the baseline worker polls its queues."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (await self._api_ready() and await self._baseline_ready()):
            for proc in self.procs.values():
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited: see {proc.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the stack was not ready within {READY_TIMEOUT_S} s (see {self.run_dir})")
            await asyncio.sleep(0.2)

    async def _api_ready(self) -> bool:
        try:
            async with httpx.AsyncClient(base_url=self.api_url, timeout=5) as http:
                health = (await http.get("/health")).json()
        except (httpx.HTTPError, ValueError):
            return False
        return bool(health.get("workflow_worker") and health.get("nodes") and all(health["nodes"].values()))

    async def _baseline_ready(self) -> bool:
        assert self.client is not None
        queues = [baseline.plain_queue(n) for n in baseline.NODES]
        polled = [await live_pollers(self.client, q) for q in queues]
        polled.append(await live_pollers(self.client, baseline.WORKFLOW_QUEUE, activities=False))
        return all(polled)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        self.server.stop()

    def kill(self) -> None:
        for proc in self.procs.values():
            proc.kill()
        self.server.kill()
