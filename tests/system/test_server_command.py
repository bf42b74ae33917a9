"""`task-scheduler server`, the lab's Temporal server: a real subprocess on free ports in a temporary state
directory. Clients reach it on every address it prints, our search attributes are registered, its UI
answers, and SIGTERM stops it and its Temporal server. A bind address the dev server cannot serve from
is refused with the reason and what to do."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dev_stack import BINARY, child_pids, clean_environment, command_line, is_alive, wait_until
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from task_scheduler.devserver import free_port, lan_addresses
from task_scheduler.workflows.search_attributes import CUSTOM_SEARCH_ATTRIBUTES

READY_TIMEOUT_S = 45.0
STOP_TIMEOUT_S = 20.0


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    output: Path
    port: int
    ui_port: int
    state_dir: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def banner(self) -> str:
        """The banner, once printed; fails at once with the output if the command exited first."""

        def printed() -> str | None:
            if self.process.poll() is not None:
                raise AssertionError(f"`server` exited with {self.process.returncode}:\n{self.text()}")
            return self.text() if "no TLS, no credentials" in self.text() else None

        return wait_until(printed, "the `server` banner", READY_TIMEOUT_S, interval_s=0.2)

    def temporal_pid(self) -> int:
        """The `temporal server start-dev` it started (a child in a session of its own)."""
        found = [pid for pid in child_pids(self.process.pid) if "start-dev" in command_line(pid)]
        assert len(found) == 1, f"children of {self.process.pid}: {found}"
        return found[0]


@pytest.fixture
def server_command(tmp_path: Path) -> Iterator[ServerProcess]:
    """`task-scheduler server` on free ports; stopped at teardown by its pid, and its Temporal server too."""
    output = tmp_path / "server.out"
    port, ui_port, state_dir = free_port(), free_port(), tmp_path / "state"
    command = [str(BINARY), "server", "--port", str(port), "--ui-port", str(ui_port)]
    command += ["--state-dir", str(state_dir)]
    with output.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=tmp_path,  # no stray .env of the repository is read
            env=clean_environment(),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServerProcess(process, output, port, ui_port, state_dir)
    yield server
    temporal = [pid for pid in child_pids(process.pid) if "start-dev" in command_line(pid)]
    if process.poll() is None:
        process.kill()
    process.wait(timeout=STOP_TIMEOUT_S)
    for pid in temporal:  # it gets SIGTERM when its parent dies (PR_SET_PDEATHSIG); wait for that
        wait_until(lambda pid=pid: not is_alive(pid), f"the Temporal server (pid {pid}) to exit", 15)


async def _custom_search_attributes(address: str) -> set[str]:
    client = await Client.connect(address)
    request = ListSearchAttributesRequest(namespace=client.namespace)
    return set((await client.operator_service.list_search_attributes(request)).custom_attributes)


async def test_server_command_serves_every_address_it_prints(server_command: ServerProcess) -> None:
    before = set(lan_addresses())
    banner = server_command.banner()
    # Other tests may add or remove interfaces meanwhile (network namespaces' bridges): the addresses
    # there before and after the banner must be printed, and answer.
    stable = sorted(before & set(lan_addresses()))

    printed = re.findall(r"TEMPORAL_ADDRESS=(\S+)", banner)
    assert {f"{host}:{server_command.port}" for host in stable} <= set(printed)
    assert f"127.0.0.1:{server_command.port}" in banner
    for host in stable:
        assert f"http://{host}:{server_command.ui_port}" in banner
    assert "--ip 0.0.0.0" in command_line(server_command.temporal_pid())
    names = {key.name for key in CUSTOM_SEARCH_ATTRIBUTES}
    for host in ["127.0.0.1", *stable]:
        assert names <= await _custom_search_attributes(f"{host}:{server_command.port}"), host
        ui = httpx.get(f"http://{host}:{server_command.ui_port}", timeout=10)
        assert ui.status_code == 200, host
    assert (server_command.state_dir / "temporal.db").is_file()


def test_server_command_stops_its_temporal_server_on_sigterm(server_command: ServerProcess) -> None:
    server_command.banner()
    temporal_pid = server_command.temporal_pid()

    server_command.process.send_signal(signal.SIGTERM)

    assert server_command.process.wait(timeout=STOP_TIMEOUT_S) == 0, server_command.text()
    assert not is_alive(temporal_pid)


@pytest.mark.parametrize("address", ["198.18.0.10", "localhost"])
def test_server_command_refuses_a_bind_address_it_cannot_serve(tmp_path: Path, address: str) -> None:
    command = [str(BINARY), "server", "--ip", address, "--port", str(free_port())]
    command += ["--state-dir", str(tmp_path / "state")]
    done = subprocess.run(
        command, cwd=tmp_path, env=clean_environment(), capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 1
    assert f"cannot be bound to {address}" in done.stderr
    assert "Bind 0.0.0.0" in done.stderr
    assert "firewall" in done.stderr
    assert not (tmp_path / "state").exists()
