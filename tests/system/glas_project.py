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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from dev_stack import REPOSITORY, StackProcess, clean_environment

PROJECT = REPOSITORY / "tests" / "glas_project"


@dataclass
class GlasProject(StackProcess):
    folder: Path = Path()

    @classmethod
    def copy(cls, folder: Path) -> GlasProject:
        shutil.copytree(PROJECT, folder, ignore=shutil.ignore_patterns("__pycache__"))
        (folder / "src" / "task_scheduler").symlink_to(REPOSITORY, target_is_directory=True)
        return cls(folder=folder)

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
        self.launch(["./exec.sh", str(self.port)], self.folder, self.environment(), "the GLAS project")

    def _ready(self) -> bool:
        self.exited("exec.sh")
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

    def journal(self) -> list[dict[str, Any]]:
        if not self.journal_file.exists():
            return []
        return [json.loads(line) for line in self.journal_file.read_text().splitlines() if line.strip()]

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
