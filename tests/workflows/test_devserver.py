"""The dev server we start for `task-scheduler dev`, the tests and the bench: a real `temporal` process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest, RemoveSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from task_scheduler.devserver import DevServer, find_temporal_binary
from task_scheduler.engine.errors import DevServerError
from task_scheduler.workflows.search_attributes import (
    CURRENT_NODE,
    CUSTOM_SEARCH_ATTRIBUTES,
    SearchAttributeRegistrationError,
    ensure_search_attributes,
)

StartDevServer = Callable[..., Awaitable[DevServer]]


@workflow.defn
class GreetingWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"


async def custom_search_attributes(client: Client) -> dict[str, int]:
    request = ListSearchAttributesRequest(namespace=client.namespace)
    return dict((await client.operator_service.list_search_attributes(request)).custom_attributes)


async def remove_search_attribute(client: Client, name: str) -> None:
    request = RemoveSearchAttributesRequest(namespace=client.namespace, search_attributes=[name])
    await client.operator_service.remove_search_attributes(request)


def test_find_temporal_binary_returns_an_executable() -> None:
    binary = find_temporal_binary()

    assert os.access(binary, os.X_OK)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True, timeout=30)
    assert version.stdout.startswith("temporal version")


async def test_devserver_answers(temporal_server: DevServer, temporal_client: Client) -> None:
    assert temporal_server.is_running()
    assert temporal_server.address == f"127.0.0.1:{temporal_server.port}"
    assert await temporal_client.service_client.check_health()
    assert await temporal_client.count_workflows() is not None


async def test_devserver_registers_custom_search_attributes(temporal_client: Client) -> None:
    registered = await custom_search_attributes(temporal_client)

    for key in CUSTOM_SEARCH_ATTRIBUTES:
        assert registered.get(key.name) == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD


async def test_ensure_search_attributes_is_idempotent(temporal_client: Client) -> None:
    assert await ensure_search_attributes(temporal_client, temporal_client.namespace) == []
    assert await ensure_search_attributes(temporal_client, temporal_client.namespace) == []


async def test_ensure_search_attributes_registers_missing_ones(start_dev_server: StartDevServer) -> None:
    server = await start_dev_server()  # our own in-memory server: the session's stays untouched
    client = await Client.connect(server.address)
    await remove_search_attribute(client, CURRENT_NODE.name)

    assert await ensure_search_attributes(client, client.namespace) == [CURRENT_NODE.name]
    assert await ensure_search_attributes(client, client.namespace) == []
    assert CURRENT_NODE.name in await custom_search_attributes(client)


async def test_ensure_search_attributes_says_how_to_register_by_hand(temporal_client: Client) -> None:
    with pytest.raises(SearchAttributeRegistrationError, match="temporal operator search-attribute create"):
        await ensure_search_attributes(temporal_client, "no-such-namespace")


async def test_devserver_restart_registers_search_attributes_missing_from_db_file(
    start_dev_server: StartDevServer, tmp_path: Path
) -> None:
    # `start-dev --search-attribute` is honoured only when it creates the database file.
    server = await start_dev_server(db_file=tmp_path / "temporal.sqlite")
    await remove_search_attribute(await Client.connect(server.address), CURRENT_NODE.name)
    server.kill()

    server.start()
    await server.wait_ready()

    assert CURRENT_NODE.name in await custom_search_attributes(await Client.connect(server.address))


async def test_devserver_keeps_workflows_across_a_kill(
    start_dev_server: StartDevServer, tmp_path: Path, task_queue: str
) -> None:
    server = await start_dev_server(db_file=tmp_path / "temporal.sqlite")
    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    workflow_id = f"greeting-{uuid.uuid4()}"
    await client.start_workflow(GreetingWorkflow.run, "lab", id=workflow_id, task_queue=task_queue)

    server.kill()
    server.start()
    await server.wait_ready()

    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    handle = client.get_workflow_handle_for(GreetingWorkflow.run, workflow_id)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    async with Worker(client, task_queue=task_queue, workflows=[GreetingWorkflow]):
        assert await asyncio.wait_for(handle.result(), timeout=30) == "hello lab"


async def test_devserver_wait_ready_reports_why_the_server_exited(start_dev_server: StartDevServer) -> None:
    with pytest.raises(DevServerError, match=r"exited with code 1(.|\n)*invalid JSON value"):
        await start_dev_server(extra_dynamic_config={"history.transferProcessorMaxPollRPS": "not json"})


async def test_devserver_refuses_a_port_in_use(temporal_server: DevServer) -> None:
    with pytest.raises(DevServerError, match="already in use"):
        DevServer(port=temporal_server.port).start()
