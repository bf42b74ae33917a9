"""The same GLAS lab project run against the system we replace (GLAS itself) and against us, side by side:
every difference of behaviour a seed client or a lab's code would meet, found by a run.

    .venv/bin/python bench/glas_compare.py --glas-dir PATH/TO/GLAS [--keep]

GLAS_DIR is a checkout of GLAS (github.com/swisscatplus/task-scheduler). The project is
tests/glas_project (written the way GLAS's README says); it is copied twice, once with GLAS at
src/task_scheduler (and at src/glas: GLAS's own modules import themselves by that name), once with this
package there. GLAS runs on a private MariaDB (Debian's `mariadb-server`, installed with apt when it is
missing: run as root) on a data directory and a port of its own, in a virtual environment of its own
with GLAS's requirements. Both runs get the same scenario (tests/system/test_glas_project.py's, and the
seed's error cases); the table prints what each answered, `=` where they agree. Nothing is timed here:
the speed comparison is `make bench GLAS_DIR=...` (issue 24).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
PROJECT = REPOSITORY / "tests" / "glas_project"
GLAS_VENV = HERE / ".glas-venv"
READY_S = 60.0
# GLAS's requirements.txt leaves out python-jose, which its jwt.py imports.
GLAS_EXTRA = ["python-jose==3.3.0"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(probe: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


# --- MariaDB, for GLAS -----------------------------------------------------------------------------


@dataclass
class MariaDB:
    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        server = _mariadb_binary("mariadbd", "mysqld")
        data = self.folder / "data"
        if not data.exists():
            install = _mariadb_binary("mariadb-install-db", "mysql_install_db")
            subprocess.run(
                [install, "--no-defaults", f"--datadir={data}", "--user=root", "--skip-test-db"],
                check=True,
                capture_output=True,
            )
        self.process = subprocess.Popen(
            [
                server,
                "--no-defaults",
                f"--datadir={data}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.folder / 'mysqld.sock'}",
                f"--pid-file={self.folder / 'mysqld.pid'}",
                "--user=root",
                "--skip-grant-tables",  # a private server on loopback for one run: no accounts
            ],
            stdout=(self.folder / "mysqld.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: self.sql("SELECT 1").returncode == 0, "MariaDB to accept connections")

    def sql(self, statement: str, database: str | None = None, script: Path | None = None) -> Any:
        client = _mariadb_binary("mariadb", "mysql")
        command = [client, "--no-defaults", "-h", "127.0.0.1", "-P", str(self.port), "-u", "root"]
        command += [database] if database else []
        stdin = script.open("rb") if script else None
        return subprocess.run(
            [*command, "-e", statement] if statement else command, stdin=stdin, capture_output=True
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _mariadb_binary(*names: str) -> str:
    for name in names:
        for folder in ("", "/usr/sbin/", "/usr/bin/"):
            found = shutil.which(f"{folder}{name}") if folder else shutil.which(name)
            if found:
                return found
    if os.geteuid() != 0:
        raise SystemExit("MariaDB is not installed: `apt-get install mariadb-server` (as root), then again")
    print("installing Debian's mariadb-server (once)...", flush=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "mariadb-server"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return _mariadb_binary(*names)


def glas_python(glas_dir: Path) -> Path:
    """A virtual environment with GLAS's own requirements (pinned by it), made once in bench/."""
    python = GLAS_VENV / "bin" / "python3"
    if not python.exists():
        print("making bench/.glas-venv with GLAS's requirements (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(GLAS_VENV)], check=True)
        requirements = [
            line
            for line in (glas_dir / "requirements.txt").read_text().split()
            if not line.startswith("pylint")
        ]
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *requirements, *GLAS_EXTRA],
            check=True,
            stderr=subprocess.DEVNULL,  # pip's warnings about this machine's package mirrors
        )
    return python


# --- a run of the project ----------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    folder: Path
    python: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    seen: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        environment = {
            **os.environ,
            **self.env,
            "PATH": f"{self.python.parent}{os.pathsep}{os.environ['PATH']}",
        }
        environment["LAB_JOURNAL"] = str(self.folder / "journal.jsonl")
        self.process = subprocess.Popen(
            ["./exec.sh", str(self.port)],
            cwd=self.folder,
            env=environment,
            stdout=(self.folder / "exec.out").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._ready, f"{self.name} to serve", READY_S)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise SystemExit(
                f"{self.name} exited:\n{(self.folder / 'exec.out').read_text(errors='replace')[-3000:]}"
            )
        return httpx.get(f"{self.url}/token/compare", timeout=5).status_code == 200

    def client(self) -> httpx.Client:
        token = httpx.get(f"{self.url}/token/compare", timeout=10).json()["token"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def journal(self) -> list[dict[str, Any]]:
        path = self.folder / "journal.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def answer(response: httpx.Response) -> str:
    """A response as the table shows it: status and body, briefly."""
    body = response.text
    if body and response.headers.get("content-type", "").startswith("application/json"):
        body = json.dumps(response.json(), sort_keys=True)
    return f"{response.status_code} {body[:70]}"


def asked(send: Callable[[], httpx.Response]) -> str:
    """The answer, or what happened instead (a server that drops the connection answers nothing)."""
    try:
        return answer(send())
    except httpx.HTTPError as exc:
        return f"no answer ({type(exc).__name__}: {exc})"


def shape(value: Any) -> Any:
    """The keys of a JSON object, recursively (values differ from run to run: ids, times)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def scenario(run: Run) -> None:
    """What a seed client and the lab's code do; each observation is kept by name."""
    seen = run.seen
    with run.client() as http:
        seen["status"] = asked(lambda: http.get("/orchestrator/status"))
        seen["extra route /my-prefix/hello"] = asked(lambda: httpx.get(f"{run.url}/my-prefix/hello"))
        seen["extended route /orchestrator/nodes"] = asked(lambda: http.get("/orchestrator/nodes"))
        added = http.post("/task/", json={"workflow_name": "prepare", "args": {"plate": "P-1"}})
        seen["POST /task/: status"] = added.status_code
        seen["POST /task/: shape"] = json.dumps(shape(added.json()))
        plain = added.json()["uuid"]
        seen["a task: its end"] = _state(http, plain, 4)
        row = http.get(f"/task/{plain}").json()
        seen["GET /task/{id} finished: shape"] = json.dumps(shape(row))
        seen["GET /task/{id} finished: state, step"] = (
            row["task"]["task_state_id"],
            row["task"]["active_step"],
        )
        over = http.post("/task/", json={"workflow_name": "prepare", "args": {"volume_ul": 5000}}).json()[
            "uuid"
        ]
        seen["a failing dose: its stop"] = _state(http, over, 5)
        running = http.get("/task/running").json()
        seen["GET /task/running after a failure"] = [(t["state"], t["current_step"]) for t in running]
        seen["PATCH /node/restart/dispenser"] = asked(lambda: http.patch("/node/restart/dispenser"))
        seen["PATCH /task/continue (failed, NEXT)"] = asked(lambda: http.patch(f"/task/continue/{over}"))
        seen["the failing dose, continued: its end"] = _state(http, over, 4)
        jammed = _jammed(run, http, "prepare", "a jammed read (step 3 of 4)")
        last = _jammed(run, http, "read", "a jammed read (the last step)")
        _errors(http, run.url, seen)
        seen["GET /workflow/"] = asked(lambda: http.get("/workflow/"))
        logs = http.get("/logs/")
        seen["GET /logs/: status, rows"] = (logs.status_code, bool(logs.json()))
        seen["GET /logs/execution: rows of a task"] = len(http.get("/logs/execution").json().get(plain, []))
        files = [
            ("files", (PROJECT / "config" / name).read_bytes()) for name in ("nodes.json", "workflows.json")
        ]
        seen["PATCH /config/reload"] = asked(lambda: http.patch("/config/reload", files=files))
        seen["DELETE /orchestrator/stop"] = asked(lambda: http.delete("/orchestrator/stop"))
        seen["status while stopped"] = asked(lambda: http.get("/orchestrator/status"))
        seen["POST /task/ while stopped"] = asked(lambda: http.post("/task/", json={"workflow_name": "read"}))
        seen["POST /orchestrator/start"] = asked(lambda: http.post("/orchestrator/start"))
        seen["status after start"] = asked(lambda: http.get("/orchestrator/status"))
    _journal(run, plain, over, jammed, last)


def _errors(http: httpx.Client, url: str, seen: dict[str, Any]) -> None:
    seen["PATCH /task/pause/unknown"] = asked(lambda: http.patch("/task/pause/nope"))
    seen["PATCH /task/continue/unknown"] = asked(lambda: http.patch("/task/continue/nope"))
    # A connection of its own: GLAS's answer to it (a 204 with a body) leaves its connection broken.
    unknown = f"{url}/task/{uuid.uuid4()}"
    seen["GET /task/unknown"] = asked(lambda: httpx.get(unknown, headers=http.headers))
    seen["PATCH /node/restart/unknown"] = asked(lambda: http.patch("/node/restart/nope"))
    seen["POST /task/ unknown workflow"] = asked(
        lambda: http.post("/task/", json={"workflow_name": "nope", "args": None})
    )
    seen["POST /task/ without workflow_name"] = http.post("/task/", json={}).status_code
    seen["no token"] = asked(lambda: httpx.get(f"{url}/task/running"))
    seen["bad token"] = asked(lambda: httpx.get(f"{url}/task/running", headers={"Authorization": "Bearer x"}))


def _jammed(run: Run, http: httpx.Client, workflow: str, what: str) -> str:
    """A read that fails, the reader restarted, the task continued: the reader's SELF redoes it."""
    seen = run.seen
    (run.folder / "reader-jammed").touch()
    task = http.post("/task/", json={"workflow_name": workflow, "args": None}).json()["uuid"]
    seen[f"{what}: its stop"] = _state(http, task, 5)
    (run.folder / "reader-jammed").unlink()
    http.patch("/node/restart/reader")
    seen[f"{what}: GET continue (the collection's)"] = asked(lambda: http.get(f"/task/continue/{task}"))
    seen[f"{what}: PATCH continue (SELF)"] = asked(lambda: http.patch(f"/task/continue/{task}"))
    seen[f"{what}, continued: its end"] = _state(http, task, 4, timeout_s=15)
    return str(task)


def _journal(run: Run, plain: str, over: str, jammed: str, last: str) -> None:
    journal = run.journal()
    hooks = [
        (e["hook"], e["node"], e["src"], e["dst"], e["wf_name"], e["args"])
        for e in journal
        if e.get("task_id") == plain and e["hook"] in ("pre", "post")
    ]
    run.seen["hooks of a task: (hook, node, src, dst, wf_name, args)"] = json.dumps(hooks)
    task_hooks = [
        (e["hook"], e["node"]) for e in journal if e.get("task_id") == plain and e["hook"].startswith("task-")
    ]
    run.seen["the task's own step hooks"] = json.dumps(task_hooks)
    continued = (("failed dose", over), ("jammed read", jammed), ("jammed last read", last))
    for name, task_id in continued:
        run.seen[f"driver runs: {name}"] = [
            e["node"] for e in journal if e["hook"] == "start" and e.get("task_id") == task_id
        ]
    run.seen["start callbacks so far"] = sum(e["hook"] == "orchestrator-start" for e in journal)


def _state(http: httpx.Client, task_id: str, state_id: int, timeout_s: float = 30.0) -> str:
    """Wait for the task to reach `state_id`; what it reached (a run that stays elsewhere is a
    difference to show, not a reason to stop the scenario)."""
    seen: list[int | None] = [None]

    def probe() -> bool:
        response = http.get(f"/task/{task_id}")
        seen[0] = response.json()["task"]["task_state_id"] if response.status_code == 200 else None
        return seen[0] == state_id

    try:
        wait_until(probe, f"task {task_id} at {state_id}", timeout_s)
    except TimeoutError:
        return f"task_state_id {seen[0]} after {timeout_s:g} s (waited for {state_id})"
    return f"task_state_id {state_id}"


def project_copy(folder: Path, package: Path, glas: bool) -> Path:
    shutil.copytree(PROJECT, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "src" / "task_scheduler").symlink_to(package, target_is_directory=True)
    if glas:
        (folder / "src" / "glas").symlink_to(package, target_is_directory=True)
    return folder


def table(seed: dict[str, Any], ours: dict[str, Any]) -> str:
    lines = []
    for name in seed | ours:
        left, right = seed.get(name, "(not reached)"), ours.get(name, "(not reached)")
        mark = "=" if left == right else "≠"
        lines += [f"{mark} {name}", f"    GLAS: {left}", f"    ours: {right}"]
    same = sum(seed.get(n) == ours.get(n) for n in seed | ours)
    total = len(seed | ours)
    lines.append(
        f"\n{same} of {total} observations the same; docs/moving-from-glas.md says why the others differ"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--glas-dir", default=os.environ.get("GLAS_DIR"), help="a checkout of GLAS (or $GLAS_DIR)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, journals)")
    args = parser.parse_args()
    if not args.glas_dir:
        parser.error("give --glas-dir (or GLAS_DIR): a checkout of github.com/swisscatplus/task-scheduler")
    glas_dir = Path(args.glas_dir).resolve()
    folder = Path(tempfile.mkdtemp(prefix="glas-compare-"))
    database = MariaDB(folder / "mariadb")
    database.folder.mkdir()
    runs: list[Run] = []
    try:
        database.start()
        database.sql("CREATE DATABASE glas")
        database.sql("", database="glas", script=glas_dir / "database" / "sql" / "schema.sql")
        glas_env = {
            "DATABASE_HOST": "127.0.0.1",
            "DATABASE_PORT": str(database.port),
            "DATABASE_USER": "root",
            "DATABASE_PASSWORD": "",
            "DATABASE_NAME": "glas",
        }
        seed = Run(
            "GLAS",
            project_copy(folder / "glas-project", glas_dir, glas=True),
            glas_python(glas_dir),
            glas_env,
        )
        ours_env = {
            "TASK_SCHEDULER_TEMPORAL_PORT": str(free_port()),
            "TASK_SCHEDULER_TEMPORAL_UI_PORT": str(free_port()),
        }
        ours = Run(
            "ours",
            project_copy(folder / "our-project", REPOSITORY, glas=False),
            Path(sys.executable),
            ours_env,
        )
        for run in (seed, ours):
            runs.append(run)
            run.start()
            try:
                scenario(run)
            except (httpx.HTTPError, TimeoutError, ValueError, KeyError) as exc:  # a difference too
                last = list(run.seen)[-1] if run.seen else "the start"
                run.seen["the scenario stopped"] = f"after {last!r}: {type(exc).__name__}: {exc}"
            finally:
                run.stop()
        print(table(seed.seen, ours.seen))
    finally:
        for run in runs:
            run.stop()
        database.stop()
        if args.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
