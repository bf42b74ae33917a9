"""A GLAS lab project (tests/glas_project: written the way the seed's README says), with this package
at `src/task_scheduler` (a link, where a lab has its git submodule), run with `./exec.sh PORT` as a user
runs it: in a process group of its own, on free ports, its drivers writing a journal the test reads.
Stopped or killed by its own pid and process group; the Temporal server it started is found and
killed by pid if it outlived it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from dev_stack import (
    READY_TIMEOUT_S,
    REPOSITORY,
    child_pids,
    clean_environment,
    command_line,
    is_alive,
    wait_until,
)

from task_scheduler.devserver import free_port

PROJECT = REPOSITORY / "tests" / "glas_project"


@dataclass
class GlasProject:
    folder: Path
    port: int = field(default_factory=free_port)
    temporal_port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0
    server_pids: list[int] = field(default_factory=list)

    @classmethod
    def copy(cls, folder: Path) -> GlasProject:
        shutil.copytree(PROJECT, folder, ignore=shutil.ignore_patterns("__pycache__"))
        (folder / "src" / "task_scheduler").symlink_to(REPOSITORY, target_is_directory=True)
        return cls(folder)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def journal_file(self) -> Path:
        return self.folder / "journal.jsonl"

    @property
    def log(self) -> Path:
        return self.folder / f"exec-{self.runs}.out"

    def environment(self) -> dict[str, str]:
        """A user's shell: the venv's python3 first on the PATH, the project's ports and journal."""
        return clean_environment(
            PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            TASK_SCHEDULER_TEMPORAL_PORT=str(self.temporal_port),
            TASK_SCHEDULER_TEMPORAL_UI_PORT=str(self.ui_port),
            LAB_JOURNAL=str(self.journal_file),
        )

    def start(self) -> None:
        self.runs += 1
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                ["./exec.sh", str(self.port)],
                cwd=self.folder,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(self._ready, "the GLAS project to serve", READY_TIMEOUT_S, interval_s=0.2)
        finally:
            self.server_pids += self._servers()

    def _servers(self) -> list[int]:
        """The Temporal dev servers under exec.sh (bash -> python3 -> temporal)."""
        assert self.process is not None
        found = []
        for child in child_pids(self.process.pid):
            found += [p for p in child_pids(child) if "start-dev" in command_line(p)]
        return found

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"exec.sh exited with {self.process.returncode}:\n{self.output()}")
        try:
            health = httpx.get(f"{self.url}/health", timeout=5).json()
            with self.client() as http:
                status = http.get("/orchestrator/status")
        except (httpx.HTTPError, ValueError):
            return False
        nodes = health.get("nodes") or {}
        return bool(
            health.get("workflow_worker") and nodes and all(nodes.values()) and status.status_code == 204
        )

    def client(self) -> httpx.Client:
        """A seed client: a token from the seed's `/token/{identifier}`, as its collection gets one."""
        given = httpx.get(f"{self.url}/token/lab-script", timeout=10).json()["token"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {given}"}, timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no output)"

    def journal(self) -> list[dict[str, Any]]:
        if not self.journal_file.exists():
            return []
        return [json.loads(line) for line in self.journal_file.read_text().splitlines() if line.strip()]

    def kill(self) -> None:
        """SIGKILL exec.sh's whole process group, as `kill -9 -PGID` (or a power cut) would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def interrupt(self, timeout_s: float = 60.0) -> int:
        """Ctrl-C in the terminal: SIGINT to the whole foreground group."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"exec.sh did not stop within {timeout_s} s of Ctrl-C:\n{self.output()}"
            ) from None

    def servers_gone(self) -> bool:
        return not any(is_alive(pid) for pid in self.server_pids)

    def cleanup(self) -> None:
        self.kill()
        for pid in self.server_pids:
            if is_alive(pid) and "start-dev" in command_line(pid):
                os.kill(pid, signal.SIGKILL)
