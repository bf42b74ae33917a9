"""The whole stack in one process: the Temporal dev server (unless the lab names a server of its own), a
worker hosting every node, and the API, with the banner that says where each is; Ctrl-C (or SIGTERM)
stops everything in order. `task-scheduler dev` runs it, and so does a GLAS project's
`BaseScheduler.run()` (its own nodes and routes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.client import Client

from .activities.host import ObserverFactory
from .api.app import access_log
from .api.security import Role, create_token
from .api.serve import server_config
from .devhook import local_webhook, printing_webhook
from .devserver import DevServer
from .devstate import RunningStack, announced, claimed, command
from .engine.config import LabConfig
from .engine.nodes import BaseNode
from .lifecycle import stop_event_on_signals
from .ports import bound, taken
from .settings import Settings, connect
from .worker import WorkerOptions, run_worker

log = logging.getLogger("task_scheduler.dev")
PRIVATE = 0o600  # owner read and write: the secret and the admin token are nobody else's


@dataclass(frozen=True)
class PortMoves:
    """How the user of this stack moves each of its ports, said when one is taken."""

    api: str = "`make run PORT=8001`, or `task-scheduler dev --port 8001`"
    temporal: str = "`make run TEMPORAL_PORT=7234`, or `task-scheduler dev --temporal-port 7234`"
    ui: str = "`make run UI_PORT=8234`, or `task-scheduler dev --ui-port 8234`"


@dataclass
class Stack:
    """What runs, and where."""

    lab: LabConfig
    state_dir: Path
    host: str = "127.0.0.1"  # the API's bind address
    port: int = 8000
    temporal_port: int = 7233  # the embedded dev server's
    ui_port: int = 8233
    temporal_address: str | None = None  # a Temporal server of the lab's own: none is started
    emulate: bool = False
    drivers: dict[str, BaseNode] | None = None  # the lab's own node objects (else built from the config)
    observers: ObserverFactory | None = None
    moves: PortMoves = PortMoves()

    def server(self) -> DevServer | None:
        if self.temporal_address is not None:
            return None
        return DevServer(
            db_file=self.state_dir / "temporal.db",
            port=self.temporal_port,
            ui_port=self.ui_port,
            log_file=self.state_dir / "temporal.log",
            port_options=(self.moves.temporal, self.moves.ui),
        )

    def settings(self, server: DevServer | None, base: Settings | None = None) -> Settings:
        """The settings of this stack's API and worker: `base` (the environment's) with its addresses, and
        the token secret: the environment's (TASK_SCHEDULER_SECRET) if set, else one kept in the state
        directory."""
        base = base or Settings()
        address = server.address if server is not None else self.temporal_address
        secret = base.secret or SecretStr(dev_secret(self.state_dir))
        update = {
            "temporal_address": address,
            "secret": secret,
            "temporal_ui_url": server.ui_url if server is not None else base.temporal_ui_url,
            "api_host": self.host,
            "api_port": self.port,
        }
        if server is not None:
            update["temporal_namespace"] = "default"
        return base.model_copy(update=update)


def admin_token(settings: Settings, state_dir: Path, name: str = "dev-admin") -> str:
    """An admin token for the person at the keyboard, also written (0600) to STATE_DIR/token for the CLI."""
    secret = settings.secret.get_secret_value() if settings.secret else ""
    token = create_token(secret, name, Role.admin, settings.token_lifetime_s(Role.admin.name))
    state_dir.mkdir(parents=True, exist_ok=True)
    write_private(state_dir / "token", token)
    return token


async def serve(
    stack: Stack,
    settings: Settings,
    app: FastAPI,
    on_ready: Callable[[Client], Awaitable[None]] | None = None,
    on_exit: Callable[[], None] | None = None,
) -> None:
    """Run until SIGINT or SIGTERM: the server (if this stack starts one), the API on `app`, a worker.
    The state directory and every port are taken before a server starts or the admin token is written,
    so a stack that cannot run says why and leaves the running one's token as it was. `on_ready` runs
    once everything serves; `on_exit` when the stop begins, in a thread of its own while everything
    still serves (it may be the lab's code, which may ask the lab something)."""
    with claimed(stack.state_dir), _api_socket(stack) as api_socket, _access_log_in(stack.state_dir):
        server = stack.server()
        if server is not None:
            server.start()
        try:
            if server is not None:
                await server.wait_ready()
            token = admin_token(settings, stack.state_dir)
            await _serve(stack, settings, app, api_socket, token, on_ready, on_exit)
        finally:
            if server is not None:
                server.stop()
        print("task_scheduler stopped", flush=True)


@contextlib.contextmanager
def _api_socket(stack: Stack) -> Iterator[socket.socket]:
    try:
        sock = bound(stack.port, stack.host)
    except OSError:
        raise taken(stack.port, stack.host, "the API", stack.moves.api) from None
    with sock:
        yield sock


@contextlib.contextmanager
def _access_log_in(state_dir: Path) -> Iterator[None]:
    """The API's access log (a line per request: the CLI's and the page's polls too) goes to a file
    in the state directory, not the terminal, where it would bury the steps' lines and the notifications."""
    access = access_log
    handler = logging.FileHandler(state_dir / "access.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    access.addHandler(handler)
    access.propagate = False
    try:
        yield
    finally:
        access.propagate = True
        access.removeHandler(handler)
        handler.close()


async def _serve(
    stack: Stack,
    settings: Settings,
    app: FastAPI,
    api_socket: socket.socket,
    token: str,
    on_ready: Callable[[Client], Awaitable[None]] | None,
    on_exit: Callable[[], None] | None,
) -> None:
    client = await connect(settings)
    app.state.client = client
    stop = asyncio.Event()
    stopping = asyncio.create_task(_stop_on_signals(stop, on_exit))
    api = uvicorn.Server(server_config(app, stack.host, stack.port))
    api_task = asyncio.create_task(api.serve(sockets=[api_socket]))
    hook = local_webhook(stack.lab.notifications)
    options = WorkerOptions(
        lab=stack.lab,
        emulate=stack.emulate,
        task_queue=settings.task_queue,
        drivers=stack.drivers,
        observers=stack.observers,
    )
    running = RunningStack(
        pid=os.getpid(),
        state_dir=str(stack.state_dir.resolve()),
        api_url=f"http://{_shown_host(stack.host)}:{stack.port}",
        temporal_ui_url=settings.temporal_ui_url,
        started_at=time.time(),
    )
    try:
        with (
            printing_webhook(hook[1]) if hook else contextlib.nullcontext(False) as listening,
            announced(running),
        ):
            print(banner(settings, stack.state_dir, token, hook, listening), flush=True)
            await run_worker(client, options, stop, on_ready=on_ready)
    finally:
        stopping.cancel()
        api.should_exit = True
        await api_task


async def _stop_on_signals(stop: asyncio.Event, on_exit: Callable[[], None] | None) -> None:
    """At SIGINT or SIGTERM, run `on_exit` (a failure of it is logged, never stops the stop), then set
    `stop`."""
    signalled = stop_event_on_signals()
    await signalled.wait()
    if on_exit is not None:
        try:
            await asyncio.to_thread(on_exit)
        except Exception:  # the lab's own stop callback, maybe: the stop goes on
            log.exception("the stop callback failed")
    stop.set()


def banner(
    settings: Settings,
    state_dir: Path,
    token: str,
    hook: tuple[str, int, str] | None,
    listening: bool = True,
) -> str:
    api = f"http://{_shown_host(settings.api_host)}:{settings.api_port}"
    notifications = _notifications_line(hook, listening)
    lines = [
        "task_scheduler is running (Ctrl-C stops it; starting it again resumes every unfinished task)",
        f"  lab page     {api}/lab   (sign in with the admin token below, or make one:"
        f" `{command()} token create NAME --role operator`)",
        f"  API          {api}   (docs: {api}/docs)",
        f"  Temporal UI  {settings.temporal_ui_url}",
        f"  Temporal     {settings.temporal_address}, state in {state_dir}/ (API requests: access.log)",
        f"  notifications {notifications}",
        f"  admin token  {token}",
        f"               (also in {state_dir}/token, which the CLI finds from any folder)",
    ]
    if settings.api_host == "0.0.0.0":
        lines.insert(3, "               (on every interface: the address allowlist says who may call)")
    return "\n".join(lines)


def _notifications_line(hook: tuple[str, int, str] | None, listening: bool) -> str:
    """Where the lab's notifications go that `dev` prints (a JSON webhook on this machine), or not."""
    if hook is None:
        return "none configured"
    if listening:
        return f"{hook[0]} (received and printed here)"
    return f"{hook[0]} (port {hook[1]} is taken: whatever listens there receives them, not printed here)"


def _shown_host(host: str) -> str:
    return "127.0.0.1" if host == "0.0.0.0" else host


def write_private(path: Path, text: str) -> None:
    """Write `path` readable by its owner only from its first byte: a fresh file made with mode 0600
    (whatever the umask, which can only remove bits) next to it, then renamed over `path`."""
    fresh = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(fresh, path)
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise


def dev_secret(state_dir: Path) -> str:
    """The stack's token secret, made once (0600 from the start) and kept in the state directory."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "secret"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(PRIVATE)  # made by an older version, or by hand
        return path.read_text().strip()
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32))
    return path.read_text().strip()
