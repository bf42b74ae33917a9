"""The seed's `BaseScheduler`: a GLAS project subclasses it (its own routes in `init_extra_routes`) and
calls `run()`, which starts what `task-scheduler dev` starts: the Temporal dev server (its state in
`.task-scheduler/` of the working directory) unless TEMPORAL_ADDRESS names a server, a worker driving
the project's own node objects, and the API on the given port with the seed's routes beside ours.
Ctrl-C stops everything; running it again resumes every unfinished task.

From the project's `.env` (its run.py loads it): JWT_SECRET signs our tokens (when it is long enough to
be safe, else a secret of our own is kept in the state directory), AUTHORIZED_IPS (space-separated) is
the allowlist. DATABASE_* and SECRET are not needed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import uvicorn
from fastapi.middleware.cors import CORSMiddleware
from pydantic import SecretStr
from temporalio.client import Client

from ..api.app import MIN_SECRET_BYTES, create_app
from ..api.serve import server_config
from ..devstack import PortMoves, Stack, dev_secret, serve
from ..engine.config import LabConfig
from ..engine.seed import OrchestratorErrorCodes
from ..lifecycle import run_async
from ..settings import Settings
from . import runtime
from .log import LoggingManager
from .operations import SeedOperations
from .routes import SeedRoutes

log = logging.getLogger("task_scheduler.app.GLAS")
# How a GLAS project's user moves a taken port: its run.py's -p, and our settings for the embedded server.
GLAS_PORT_MOVES = PortMoves(
    api="the project's `-p PORT`, e.g. `./exec.sh 3001`",
    temporal="TASK_SCHEDULER_TEMPORAL_PORT=7234 in the environment or .env",
    ui="TASK_SCHEDULER_TEMPORAL_UI_PORT=8234 in the environment or .env",
)
NOT_NEEDED = ("DATABASE_HOST", "DATABASE_PORT", "DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_NAME")


class BaseScheduler(SeedRoutes):
    def __init__(self, orchestrator: Any, port: int) -> None:
        self.port = port
        self.settings = project_settings(port)
        self.api = create_app(self.settings, lab=LabConfig(nodes=[], workflows=[]))
        # The seed let any web page call it (a lab's dashboard on another host). Tokens are bearer
        # headers, never cookies, and /token/{identifier} refuses a web page (api/routers/tokens.py):
        # a page can only act with a token its user gave it.
        self.api.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
        seed = runtime.SeedRuntime(SeedOperations(self.api))
        runtime.install(seed)
        self.config: uvicorn.Config = server_config(self.api, "0.0.0.0", port)
        self.server = uvicorn.Server(self.config)
        self._secret = os.environ.get("SECRET", "").encode()
        super().__init__(orchestrator, seed)
        self.init_extra_routes()
        self.include_routers()

    def bind_logger_name(self, logger_name: str) -> None:
        self.logger = LoggingManager.get_logger("scheduler", app=logger_name)

    def init_extra_routes(self) -> None:
        """A project's own routes: `self.api.include_router(...)` (the seed's hook)."""

    def include_routers(self) -> None:
        for router in self.routers():
            self.api.include_router(router)

    def full_stop(self) -> None:
        """Stop the whole scheduler, as Ctrl-C does (the seed's, for a project's own code)."""
        os.kill(os.getpid(), signal.SIGTERM)

    def run(self) -> None:
        """Load the project's lab, serve it until Ctrl-C (or SIGTERM). A lab that does not load is
        reported, every problem located, and the process exits with status 1."""
        LoggingManager()  # the project's run.py set logging up; if it did not, the seed's defaults
        _tell_what_is_not_needed()
        code = self.orchestrator.start()
        if code is not OrchestratorErrorCodes.OK:
            problems = self.orchestrator.problems
            why = problems.message if problems else "its start callback or loaders said so"
            log.critical("the orchestrator did not start (%s): %s", code.name, why)
            raise SystemExit(1)
        stack = self._stack()
        settings = stack.settings(stack.server(), base=self.settings)
        self.api.state.settings = settings
        self.api.state.lab = self.orchestrator.lab_config
        code = run_async(lambda: serve(stack, settings, self.api, self._ready, self._stopping))
        if code:
            raise SystemExit(code)

    def _stack(self) -> Stack:
        given = "temporal_address" in self.settings.model_fields_set
        address = self.settings.temporal_address if given else None
        return Stack(
            lab=self.orchestrator.lab_config,
            state_dir=self.settings.state_dir,
            host="0.0.0.0",  # the seed's: its clients may be on other PCs (the allowlist decides)
            port=self.port,
            temporal_port=self.settings.temporal_port,
            ui_port=self.settings.temporal_ui_port,
            temporal_address=address,
            drivers=self.orchestrator.drive(),
            observers=self.orchestrator.step_hooks,
            moves=GLAS_PORT_MOVES,
        )

    async def _ready(self, client: Client) -> None:
        """Everything serves: the seed's objects act on the lab now, and the lab takes tasks (a start of
        the scheduler is the seed's orchestrator start)."""
        self.seed.bind(asyncio.get_running_loop())
        await self.seed.operations.start_intake("scheduler start")

    def _stopping(self) -> None:
        self.orchestrator.stopped_with_process()
        self.seed.close()


def project_settings(port: int) -> Settings:
    """Our settings (TASK_SCHEDULER_*, TEMPORAL_*), and the seed's `.env` where ours say nothing."""
    settings = Settings()
    update: dict[str, Any] = {"api_host": "0.0.0.0", "api_port": port}
    if settings.secret is None:
        update["secret"] = SecretStr(_token_secret(settings.state_dir))
    ips = os.environ.get("AUTHORIZED_IPS", "").split()
    if ips and "authorized_ips" not in settings.model_fields_set:
        update["authorized_ips"] = _networks(ips)
    return settings.model_copy(update=update)


def _token_secret(state_dir: Path) -> str:
    """JWT_SECRET if it is long enough to sign tokens safely; else a secret of our own."""
    given = os.environ.get("JWT_SECRET", "")
    if len(given.encode()) >= MIN_SECRET_BYTES:
        return given
    if given:
        log.warning(
            "JWT_SECRET is %d bytes, too short to sign tokens safely (%d at least): a secret of our own "
            "is used (%s/secret); the seed's clients fetch tokens at /token/{identifier} all the same",
            len(given.encode()),
            MIN_SECRET_BYTES,
            state_dir,
        )
    return dev_secret(state_dir)


def _networks(ips: list[str]) -> list[Any]:
    try:
        return [ip_network(ip, strict=False) for ip in ips]
    except ValueError as exc:
        raise SystemExit(f"error: AUTHORIZED_IPS: {exc} (give addresses, separated by spaces)") from exc


def _tell_what_is_not_needed() -> None:
    found = [name for name in (*NOT_NEEDED, "SECRET") if os.environ.get(name)]
    if found:
        log.info("%s: not needed, Temporal keeps every state (ignored)", ", ".join(found))
