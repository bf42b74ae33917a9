"""What a running `dev` stack leaves on this machine so the CLI finds it from any folder, and the words
that name our commands as they can be typed here.

A stack keeps its state in a folder (`.task-scheduler/` where it was started): the token secret, the
admin token, the Temporal database, and while it runs `running.json` (its pid and its API's address),
guarded by a lock on `dev.lock` that a second stack on the same folder cannot take. It also leaves a
pointer to that folder in the user's state directory ($XDG_STATE_HOME/task-scheduler/running/<pid>.json,
~/.local/state by default), removed when it stops: a CLI started in another folder finds the stack
through it. Standard library only: the CLI imports it before anything heavy."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .engine.errors import TaskSchedulerError

DEFAULT_STATE_DIR = ".task-scheduler"
RUNNING = "running.json"
LOCK = "dev.lock"


class StackAlreadyRunning(TaskSchedulerError):
    """A `dev` stack already runs on this state directory."""


@dataclass(frozen=True)
class RunningStack:
    """A `dev` stack that runs: its process, its state folder and its API."""

    pid: int
    state_dir: str
    api_url: str
    temporal_ui_url: str | None = None
    started_at: float = 0.0  # time.time()

    @classmethod
    def read(cls, path: Path) -> RunningStack | None:
        """The stack `path` describes, if it is well formed and a process still holds its folder (the
        lock, not the pid: after a crash or a reboot the pid may be another process's)."""
        try:
            stack = cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return stack if _held(Path(stack.state_dir)) else None


def _held(state_dir: Path) -> bool:
    """Whether a running stack holds `state_dir` (its `dev.lock`)."""
    try:
        lock = (state_dir / LOCK).open("r")
    except OSError:
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


@contextmanager
def claimed(state_dir: Path) -> Iterator[None]:
    """Hold `state_dir` for this process: refused (with the running stack's pid and addresses) while
    another stack holds it. The lock goes with the process, however it ends."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = (state_dir / LOCK).open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StackAlreadyRunning(_already_running(state_dir)) from None
    try:
        yield
    finally:
        lock.close()


def _already_running(state_dir: Path) -> str:
    other = RunningStack.read(state_dir / RUNNING)
    where = f"pid {other.pid}, lab page {other.api_url}/lab" if other else "its process holds " + LOCK
    return (
        f"task_scheduler is already running on {state_dir.resolve()}/ ({where}): use that one, or stop it "
        f"first (Ctrl-C in its terminal{f', or `kill {other.pid}`' if other else ''}). A second stack "
        "needs its own --state-dir and ports (--port, --temporal-port, --ui-port)."
    )


@contextmanager
def announced(stack: RunningStack) -> Iterator[None]:
    """While the block runs, `running.json` in the stack's folder and a pointer to it in the user's state
    directory say where the stack is; both go when it ends."""
    files = [Path(stack.state_dir) / RUNNING, registry() / f"{stack.pid}.json"]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, json.dumps(asdict(stack)))
    try:
        yield
    finally:
        for path in files:
            path.unlink(missing_ok=True)


def _write(path: Path, text: str) -> None:
    fresh = path.with_name(f".{path.name}.{os.getpid()}")
    fresh.write_text(text)
    os.replace(fresh, path)


def registry() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "task-scheduler" / "running"


@dataclass(frozen=True)
class Found:
    """Where the CLI takes the dev stack's state from, and why (said when something is missing)."""

    state_dir: Path | None
    stack: RunningStack | None
    looked: tuple[str, ...]

    def file(self, name: str) -> Path | None:
        return self.state_dir / name if self.state_dir is not None else None

    def where_looked(self) -> str:
        return "; ".join(self.looked)


def find(start: Path | None = None) -> Found:
    """The dev stack's state folder the CLI should use: a running stack's, the nearest in the current
    folder or above it first, else the latest started on this machine for this user; with none running,
    the nearest `.task-scheduler/` that holds a token (a stack that is stopped: its token, its secret)."""
    here = (start or Path.cwd()).resolve()
    folders = [folder / DEFAULT_STATE_DIR for folder in (here, *here.parents)]
    nearby = [folder for folder in folders if folder.is_dir()]
    for folder in nearby:
        stack = RunningStack.read(folder / RUNNING)
        if stack is not None:
            return Found(folder, stack, (f"{folder}/",))
    looked = f"{DEFAULT_STATE_DIR}/ in {here} and the folders above it"
    running = list(_running())
    if running:
        stack = max(running, key=lambda one: one.started_at)
        if len(running) > 1:
            others = ", ".join(one.state_dir for one in running if one is not stack)
            print(f"note: several dev stacks run; using {stack.state_dir} (also: {others})", file=sys.stderr)
        return Found(Path(stack.state_dir), stack, (looked, f"the running stack in {stack.state_dir}/"))
    stopped = next((folder for folder in nearby if (folder / "token").exists()), None)
    where = (looked, f"no running stack listed in {registry()}/")
    return Found(stopped, None, (*where, f"a stopped stack's {stopped}/") if stopped else where)


def _running() -> Iterator[RunningStack]:
    folder = registry()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        stack = RunningStack.read(path)
        if stack is None:
            path.unlink(missing_ok=True)  # its stack was killed: the pointer outlived it
        else:
            yield stack


def command(name: str = "task-scheduler") -> str:
    """`name` as the user can type it here: bare when the shell finds this very program by that name,
    else the path of the one running now (`.venv/bin/task-scheduler` in a checkout whose venv is not
    activated)."""
    ours = _beside_python(name)
    found = shutil.which(name)
    if found is not None and (ours is None or Path(found).resolve() == ours):
        return name
    if ours is None:
        return name
    return _shortest(ours)


def _beside_python(name: str) -> Path | None:
    """`name` in the folder of this Python (a virtualenv's bin/, where pip put our console script)."""
    path = Path(sys.executable).parent / name
    return path.resolve() if path.exists() else None


def _shortest(path: Path) -> str:
    try:
        relative = path.relative_to(Path.cwd().resolve())
    except ValueError:
        return str(path)
    return str(relative)
