"""A lab PC's worker for the API tests: `task-scheduler worker --name NAME` in a subprocess that calls its
host `<name>.test`, so to this process (the API's) it is a worker on another PC: its pollers are judged
by the server's poller list alone, never by a local pid check. Stopped by its own pid."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The real CLI, with the host name a PC of its own would have.
LAUNCHER = (
    "import socket, sys; socket.gethostname = lambda: sys.argv[1]; "
    "from task_scheduler.cli import main; sys.exit(main(sys.argv[2:]))"
)


@dataclass
class PcWorker:
    name: str
    process: subprocess.Popen[bytes]
    output: Path
    host: str = field(init=False)

    def __post_init__(self) -> None:
        self.host = f"{self.name}.test"

    async def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM by pid, as a PC shut down properly; its exit status. Waited for in a thread: the
        workflows worker of this process must answer the ledgers' updates of its clean stop meanwhile."""
        os.kill(self.process.pid, signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, timeout_s)

    def kill(self) -> None:
        """SIGKILL by pid, as a PC switched off; reaped at once."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def tail(self, lines: int = 30) -> str:
        text = self.output.read_text(encoding="utf-8", errors="replace") if self.output.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


StartPc = Callable[..., PcWorker]  # (lab, name, address, task_queue)


@dataclass
class PcWorkers:
    """The PC workers a test started; `stop_all` kills those still running (by pid)."""

    folder: Path
    started: list[PcWorker] = field(default_factory=list)

    def start(self, lab: Any, name: str, address: str, task_queue: str) -> PcWorker:
        output = self.folder / f"{name}-{len(self.started)}.log"
        command = [
            *[sys.executable, "-c", LAUNCHER, f"{name}.test", "worker", "--name", name],
            *["-n", str(lab.nodes_file), "-w", str(lab.workflows_file)],
            *["--address", address, "--task-queue", task_queue, "--grace-s", "1"],
        ]
        with output.open("wb") as sink:
            process = subprocess.Popen(
                command,
                cwd=lab.folder,  # no stray .env of the repository is read
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = PcWorker(name, process, output)
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.kill()
