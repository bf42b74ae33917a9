"""The FastAPI app factory. Stateless: every answer comes from Temporal or the lab configuration."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from temporalio.client import Client

from ..engine.config import LabConfig
from ..engine.errors import MissingSecretError, WeakSecretError
from ..engine.loader import load_config, load_config_dir
from ..settings import Settings
from .body_limit import BodyLimit
from .docs import install_docs
from .errors import install_error_handlers
from .lab_page import install_lab_page
from .routers import lab as lab_routes
from .routers import me, metrics, nodes, tasks, timeline, tokens, workers
from .routers import stats as stats_routes
from .security import address_allowed

access_log = logging.getLogger("task_scheduler.access")
# Refused by access control (no or bad token, too low a role, address not allowed). A 404 or a 409 was
# allowed in: the caller may ask, the answer is no.
REFUSED = frozenset({401, 403})


MIN_SECRET_BYTES = 32  # HS256: a shorter key is open to brute force (RFC 7518, section 3.2)


def check_secret(settings: Settings) -> None:
    """A missing, blank or short secret is a start-up error, never a silent default."""
    secret = settings.secret.get_secret_value().strip() if settings.secret else ""
    if not secret:
        raise MissingSecretError()
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise WeakSecretError(
            f"TASK_SCHEDULER_SECRET is too short ({len(secret.encode())} bytes): tokens signed with it "
            f"could be forged. Use at least {MIN_SECRET_BYTES} bytes, e.g. `openssl rand -hex 32`."
        )


def load_lab(settings: Settings) -> LabConfig:
    """The lab as the API needs it: no node's type resolved, no driver module imported (hosted=None)."""
    if settings.nodes_file and settings.workflows_file:
        return load_config(settings.nodes_file, settings.workflows_file, settings.node_modules, hosted=None)
    return load_config_dir(Path(settings.config_dir), settings.node_modules, hosted=None)


def create_app(
    settings: Settings | None = None,
    lab: LabConfig | None = None,
    extra_routers: Sequence[APIRouter] = (),
    client: Client | None = None,
) -> FastAPI:
    """Build the API. `extra_routers` are a lab's own routes (the seed's `init_extra_routes`)."""
    settings = settings or Settings()
    check_secret(settings)
    app = FastAPI(
        title="task_scheduler",
        description="Durable lab tasks on Temporal: start, inspect and control tasks and nodes.",
        version="0.1.0",
        docs_url=None,  # /docs and /redoc are install_docs': their assets come from the package, not a CDN
        redoc_url=None,
    )
    install_docs(app)
    install_lab_page(app)
    app.state.settings = settings
    app.state.lab = lab or load_lab(settings)
    app.state.client = client
    app.state.client_lock = asyncio.Lock()
    install_error_handlers(app)
    for router in (
        tasks.router,
        nodes.router,
        workers.router,
        lab_routes.router,
        tokens.router,
        me.router,
        metrics.router,
        timeline.router,
        stats_routes.router,
        *extra_routers,
    ):
        app.include_router(router)
    # The last added runs first: the allowlist and the access log see every request, a 413 included.
    app.add_middleware(BodyLimit)
    app.middleware("http")(_guard_and_log)
    return app


async def _guard_and_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Refuse addresses outside the allowlist, and log every request: who, from where, what, outcome."""
    address = request.client.host if request.client else None
    if not address_allowed(address, request.app.state.settings.authorized_ips):
        response: Response = JSONResponse(
            {"detail": f"address {address} is not allowed (TASK_SCHEDULER_AUTHORIZED_IPS)"}, status_code=403
        )
    else:
        try:
            response = await call_next(request)
        except Exception:
            _log_access(request, address, 500)  # a crash is a request too; the error is logged by uvicorn
            raise
    _log_access(request, address, response.status_code)
    return response


def _log_access(request: Request, address: str | None, status: int) -> None:
    identity = getattr(request.state, "identity", None)
    access_log.info(
        "client=%s identity=%s method=%s path=%s status=%s %s",
        address,
        f"{identity.name}({identity.role.name})" if identity else "-",
        request.method,
        request.url.path,
        status,
        "refused" if status in REFUSED else "allowed",
    )
