"""The seed's HTTP API on an app of ours (`task-scheduler dev` and `api`): its routes over the lab's
configuration, for the seed's clients."""

from __future__ import annotations

from fastapi import FastAPI

from . import runtime
from .default import ConfigOrchestrator
from .operations import SeedOperations
from .routes import SeedRoutes


def install_seed_api(app: FastAPI) -> SeedRoutes:
    """Serve the seed's routes on `app` (its runtime becomes this process's)."""
    seed = runtime.SeedRuntime(SeedOperations(app))
    runtime.install(seed)
    routes = SeedRoutes(ConfigOrchestrator(app), seed)
    for router in routes.routers():
        app.include_router(router)
    return routes
