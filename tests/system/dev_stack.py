"""`task-scheduler dev` as a subprocess for the system tests: free ports, a state directory, a fast copy
of the demo lab; waits on /health with a deadline; stopped or killed by its own pid and process group,
and finds the Temporal dev server it started (a child in a session of its own)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from task_scheduler.devserver import free_port

T = TypeVar("T")

REPOSITORY = Path(__file__).resolve().parents[2]
DEMO_LAB = REPOSITORY / "examples" / "demo-lab"
BINARY = Path(sys.executable).parent / "task-scheduler"
READY_TIMEOUT_S = 45.0


def wait_until(
    probe: Callable[[], T | None], what: str, timeout_s: float = 30.0, interval_s: float = 0.1
) -> T:
    """Poll `probe` until it returns something truthy; fail with the last value after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


def fast_demo_lab(folder: Path, speed: float, notify_port: int | None = None, **node_fields: Any) -> Path:
    """A copy of the demo lab whose devices run `speed` times their time, with `node_fields` (e.g.
    `retry`, `heartbeat_timeout_s`) set on every node; with `notify_port`, its notifications.json too,
    its local webhook on that port."""
    folder.mkdir(parents=True, exist_ok=True)
    if notify_port is not None:
        text = (DEMO_LAB / "notifications.json").read_text(encoding="utf-8")
        (folder / "notifications.json").write_text(
            text.replace(":8765/", f":{notify_port}/"), encoding="utf-8"
        )
    shutil.copy(DEMO_LAB / "lab_nodes.py", folder / "lab_nodes.py")
    shutil.copy(DEMO_LAB / "workflows.json", folder / "workflows.json")
    nodes = json.loads((DEMO_LAB / "nodes.json").read_text(encoding="utf-8"))
    for node in nodes["nodes"]:
        node["properties"]["speed"] = speed
        node.update(node_fields)
    (folder / "nodes.json").write_text(json.dumps(nodes, indent=2), encoding="utf-8")
    return folder


def clean_environment(**extra: str) -> dict[str, str]:
    """This environment without any task_scheduler or Temporal setting of the developer's."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("TASK_SCHEDULER_", "TEMPORAL_"))}
    return {**kept, **extra}


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc: the Temporal server runs in its own session)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 is the parent pid; the command name (field 2) may hold spaces, so split after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def is_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class StackProcess:
    """A command that runs the whole stack (a Temporal dev server among its children), started in a
    process group of its own as a terminal runs it, on free ports; killed by its pid and group, and the
    Temporal servers it started by their pids if they outlive it."""

    port: int = field(default_factory=free_port)
    temporal_port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0
    server_pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        raise NotImplementedError

    def launch(self, command: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
        """Start `command` and wait until `_ready`; remember the Temporal servers it started."""
        self.runs += 1
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(self._ready, f"{what} to be ready", READY_TIMEOUT_S, interval_s=0.2)
        finally:
            self.server_pids += self.servers()

    def _ready(self) -> bool:
        raise NotImplementedError

    def servers(self) -> list[int]:
        """The Temporal dev servers among the command's children (and theirs: a shell script's)."""
        assert self.process is not None
        found, parents = [], [self.process.pid]
        while parents:
            children = [c for parent in parents for c in child_pids(parent)]
            found += [c for c in children if "start-dev" in command_line(c)]
            parents = [c for c in children if "start-dev" not in command_line(c)]
        return found

    def exited(self, what: str) -> None:
        """Fail at once, with its output, if the command has exited."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{what} exited with {self.process.returncode}:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no output)"

    def servers_gone(self) -> bool:
        return not any(is_alive(pid) for pid in self.server_pids)

    def cleanup(self) -> None:
        """Teardown: kill the command's group, and any Temporal server of it that outlived it, by pid."""
        self.kill()
        for pid in self.server_pids:
            if is_alive(pid) and "start-dev" in command_line(pid):
                os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or `kill -9 -PGID` would."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # start_new_session: its pgid is its pid
        self.process.wait()


@dataclass
class DevStack(StackProcess):
    """One `task-scheduler dev` process and what it serves."""

    config: Path = Path()
    state_dir: Path = Path()

    @property
    def log(self) -> Path:
        return self.state_dir / f"dev-{self.runs}.out"

    @property
    def token(self) -> str:
        return (self.state_dir / "token").read_text().strip()

    def command(self) -> list[str]:
        return [
            str(BINARY),
            "dev",
            *["--config", str(self.config), "--state-dir", str(self.state_dir)],
            *["--port", str(self.port), "--temporal-port", str(self.temporal_port)],
            *["--ui-port", str(self.ui_port)],
        ]

    def start(self) -> None:
        """Start `dev` and wait until its API answers, its worker polls and hosts every node."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # cwd: no .env of the repository is read
        self.launch(self.command(), self.state_dir.parent, clean_environment(), "the dev stack")

    def _ready(self) -> bool:
        self.exited("`dev`")
        try:
            response = httpx.get(f"{self.url}/health", timeout=5)
        except httpx.HTTPError:
            return False
        health = response.json() if response.status_code == 200 else {}
        return bool(health.get("workflow_worker") and health["nodes"] and all(health["nodes"].values()))

    def temporal_server_pid(self) -> int:
        """The pid of the Temporal dev server this `dev` started."""
        servers = self.servers()
        assert len(servers) == 1, f"expected one Temporal dev server child, found {servers}"
        return servers[0]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def interrupt(self, timeout_s: float = 30.0) -> int:
        """Ctrl-C: SIGINT to `dev` alone; its exit code (SIGKILL if it does not stop in time)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"`dev` did not stop within {timeout_s} s of SIGINT:\n{self.output()}"
            ) from None
