"""Shared fixtures: one real Temporal dev server for the session, started only if a test asks for it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from notify_receivers import Mailbox, Webhook, smtp_receiver, webhook_receiver
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from task_scheduler.devserver import DevServer

StartDevServer = Callable[..., Awaitable[DevServer]]


@pytest.fixture(scope="session", autouse=True)
def own_user_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The user state directory where running dev stacks leave a pointer for the CLI: the session's own,
    so the stacks the tests start (and the CLI they run) never meet a developer's own `make run`."""
    folder = tmp_path_factory.mktemp("user-state")
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = before


@pytest.fixture(scope="session")
async def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    """A headless dev server on a SQLite file (as `task-scheduler dev` runs it), stopped by its pid."""
    directory = tmp_path_factory.mktemp("temporal")
    server = DevServer(db_file=directory / "temporal.sqlite", log_file=directory / "temporal.log")
    server.start()
    try:
        await server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def temporal_client(temporal_server: DevServer) -> Client:
    return await Client.connect(
        temporal_server.address, namespace=temporal_server.namespace, data_converter=pydantic_data_converter
    )


@pytest.fixture
def task_queue(request: pytest.FixtureRequest) -> str:
    """A queue no other test polls, named after the test so it can be found in the UI."""
    return f"{request.node.name}-{uuid.uuid4()}"


@pytest.fixture
def start_dev_server(tmp_path: Path) -> Iterator[StartDevServer]:
    """Start extra, test-owned dev servers (to kill and restart them); all are killed at teardown."""
    servers: list[DevServer] = []

    async def start(**options: Any) -> DevServer:
        options.setdefault("log_file", tmp_path / f"temporal-{len(servers)}.log")
        server = DevServer(**options)
        servers.append(server)
        server.start()
        await server.wait_ready()
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A JSON webhook receiver on loopback (tests/notify_receivers.py), stopped after the test."""
    with webhook_receiver() as hook:
        yield hook


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """An SMTP server on loopback that keeps every mail it gets, stopped after the test."""
    with smtp_receiver() as box:
        yield box
