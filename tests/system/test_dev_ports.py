"""`task-scheduler dev` as a newcomer meets it on a machine where something else runs: a taken port is
refused before anything starts or is written, naming the port, what needed it, who holds it and how
to move it; a second `dev` on the same folder says the first runs; and the CLI finds the running stack
(its address, its token, its secret) from any folder."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from dev_stack import BINARY, DevStack, clean_environment, fast_demo_lab

from task_scheduler.devserver import free_port

REPOSITORY = Path(__file__).resolve().parents[2]


def _dev(stack: DevStack, port: int, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    command = [
        str(BINARY),
        "dev",
        *["--config", str(stack.config), "--state-dir", str(stack.state_dir)],
        *["--port", str(port), "--temporal-port", str(free_port()), "--ui-port", str(free_port())],
    ]
    return subprocess.run(
        command,
        cwd=stack.state_dir.parent,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def _cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BINARY), *args],
        cwd=cwd,
        env=clean_environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_taken_api_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    stack = DevStack(config=fast_demo_lab(tmp_path / "lab", speed=0.1), state_dir=tmp_path / "state")
    stack.state_dir.mkdir(parents=True)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        run = _dev(stack, port)

    said = run.stdout + run.stderr
    assert run.returncode == 1, said
    assert f"port {port} on 127.0.0.1 (the API) is already in use by pid {os.getpid()} (" in said
    assert "`make run PORT=8001`, or `task-scheduler dev --port 8001`" in said
    assert "Traceback" not in said
    assert "task_scheduler is running" not in said
    assert not (stack.state_dir / "token").exists(), "a refused start wrote a token"
    assert not (stack.state_dir / "temporal.db").exists(), "a refused start started a Temporal server"


def test_a_second_dev_says_the_first_runs_and_the_cli_finds_it_from_any_folder(tmp_path: Path) -> None:
    stack = DevStack(config=fast_demo_lab(tmp_path / "lab", speed=0.1), state_dir=tmp_path / "state")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        stack.start()
        assert stack.process is not None
        token = stack.token

        second = _dev(stack, free_port())

        said = second.stdout + second.stderr
        assert second.returncode == 1, said
        assert f"task_scheduler is already running on {stack.state_dir.resolve()}/" in said
        assert f"pid {stack.process.pid}, lab page {stack.url}/lab" in said
        assert stack.token == token, "the refused second start rewrote the admin token"

        listed = _cli(elsewhere, "task", "list")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        made = _cli(elsewhere, "token", "create", "screen")
        assert made.returncode == 0 and made.stdout.count(".") == 2, made.stdout + made.stderr

        nowhere = _cli(elsewhere, "task", "list", XDG_STATE_HOME=str(tmp_path / "empty-user-state"))
        assert nowhere.returncode == 1
        assert f".task-scheduler/ in {elsewhere.resolve()} and the folders above it" in nowhere.stderr

        # The CLI's requests are in the access log, and not among the lines of the terminal.
        assert "method=GET path=/tasks " in (stack.state_dir / "access.log").read_text()
        assert "path=/tasks " not in stack.output()

        assert stack.interrupt() == 0, stack.output()
        assert "task_scheduler stopped" in stack.output()
        assert not (stack.state_dir / "running.json").exists()
    finally:
        stack.cleanup()


def test_make_run_passes_the_ports_through() -> None:
    shown = subprocess.run(
        ["make", "-n", "run", "PORT=8001", "TEMPORAL_PORT=7234", "UI_PORT=8234"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "dev --config examples/demo-lab --port 8001 --temporal-port 7234" in shown
    assert "--ui-port 8234" in shown
