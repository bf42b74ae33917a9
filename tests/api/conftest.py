"""API fixtures: the app served by uvicorn on a free loopback port (real HTTP), on the session's dev
server, with an in-process worker hosting a lab of test nodes whose ids are unique to the session
(the ledgers `node-<id>` live on the shared dev server), on a task queue of its own."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from api_support import (
    LOOPBACK,
    SECRET,
    UI_URL,
    WORKFLOWS,
    MakeClient,
    ServeApp,
    Tasks,
    bearer,
    lab_fixtures,
    serving,
    token,
)
from fastapi import APIRouter
from pydantic import SecretStr
from temporalio.client import Client

from task_scheduler.api.app import create_app
from task_scheduler.devserver import DevServer
from task_scheduler.engine.config import LabConfig
from task_scheduler.glas.app import install_seed_api
from task_scheduler.settings import Settings
from task_scheduler.worker import LabWorker, WorkerOptions


@pytest.fixture(scope="session")
def api_lab(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return lab_fixtures.write_lab(tmp_path_factory.mktemp("api-lab"), WORKFLOWS)


@pytest.fixture(scope="session")
def api_settings(temporal_server: DevServer) -> Settings:
    return Settings(
        task_queue=f"api-tests-{uuid.uuid4()}",
        secret=SecretStr(SECRET),
        temporal_address=temporal_server.address,
        temporal_namespace=temporal_server.namespace,
        authorized_ips=LOOPBACK,
        temporal_ui_url=UI_URL,
        rpc_timeout_s=5.0,
    )


@pytest.fixture(scope="session")
async def api_worker(
    temporal_client: Client, api_lab: Any, api_settings: Settings
) -> AsyncIterator[LabWorker]:
    options = WorkerOptions(lab=api_lab.config, task_queue=api_settings.task_queue, grace_s=1.0)
    async with LabWorker(temporal_client, options) as worker:
        yield worker


@pytest.fixture(scope="session")
async def api_url(
    api_settings: Settings, api_lab: Any, api_worker: LabWorker, temporal_client: Client
) -> AsyncIterator[str]:
    """The session's API: its lab, its task queue, the worker hosting the lab."""
    app = create_app(api_settings, lab=api_lab.config, client=temporal_client)
    install_seed_api(app)
    async with serving(app) as url:
        yield url


@pytest.fixture
async def serve_app(api_settings: Settings, api_lab: Any) -> AsyncIterator[ServeApp]:
    """`await serve_app(settings=..., lab=..., client=..., extra_routers=[...], host=...)`: another app of
    the test's own, served until the test ends. Defaults: the session's settings and lab, no client."""
    async with contextlib.AsyncExitStack() as stack:

        async def serve(
            settings: Settings | None = None,
            lab: LabConfig | None = None,
            client: Client | None = None,
            extra_routers: Sequence[APIRouter] = (),
            host: str = "127.0.0.1",
        ) -> str:
            app = create_app(
                settings or api_settings,
                lab=lab or api_lab.config,
                client=client,
                extra_routers=extra_routers,
            )
            install_seed_api(app)  # as `task-scheduler api` serves it
            return await stack.enter_async_context(serving(app, host))

        yield serve


@pytest.fixture
async def make_client(api_url: str) -> AsyncIterator[MakeClient]:
    """`make_client("viewer")`, `make_client(None)` (no token), `make_client(headers=..., base_url=...)`."""
    async with contextlib.AsyncExitStack() as stack:

        def make(
            role: str | None = None, headers: dict[str, str] | None = None, base_url: str | None = None
        ) -> httpx.AsyncClient:
            sent = {**(bearer(token(role)) if role else {}), **(headers or {})}
            client = httpx.AsyncClient(base_url=base_url or api_url, headers=sent, timeout=30)
            stack.push_async_callback(client.aclose)
            return client

        yield make


@pytest.fixture
def anonymous(make_client: MakeClient) -> httpx.AsyncClient:
    return make_client()


@pytest.fixture
def viewer(make_client: MakeClient) -> httpx.AsyncClient:
    return make_client("viewer")


@pytest.fixture
def operator(make_client: MakeClient) -> httpx.AsyncClient:
    return make_client("operator")


@pytest.fixture
def admin(make_client: MakeClient) -> httpx.AsyncClient:
    return make_client("admin")


@pytest.fixture
async def tasks(operator: httpx.AsyncClient, api_lab: Any, temporal_client: Client) -> AsyncIterator[Tasks]:
    started = Tasks(operator, api_lab, temporal_client)
    yield started
    await started.cleanup()
