"""The dev server we start for `task-scheduler dev`, the tests and the bench: a real `temporal` process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import IndexedValueType, TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest, RemoveSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from task_scheduler.devserver import (
    DEV_SERVER_RETENTION,
    DevServer,
    ensure_retention,
    find_temporal_binary,
    namespace_retention,
)
from task_scheduler.engine.errors import DevServerError
from task_scheduler.ports import PortTaken
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


async def test_devserver_keeps_finished_tasks_for_30_days(temporal_client: Client) -> None:
    # `start-dev` makes its namespace with 24 hours: yesterday's tasks would be gone.
    assert await namespace_retention(temporal_client, temporal_client.namespace) >= timedelta(days=30)


async def test_ensure_retention_raises_a_short_one_and_never_lowers_one(
    start_dev_server: StartDevServer,
) -> None:
    server = await start_dev_server(retention=timedelta(days=1))  # as `start-dev` leaves it
    client = await Client.connect(server.address)
    assert await namespace_retention(client, client.namespace) == timedelta(days=1)

    assert await ensure_retention(client, client.namespace, timedelta(days=30)) == timedelta(days=1)
    assert await ensure_retention(client, client.namespace, timedelta(days=30)) is None
    assert await ensure_retention(client, client.namespace, timedelta(days=7)) is None
    assert await namespace_retention(client, client.namespace) == timedelta(days=30)


def test_setup_reports_a_short_retention_and_how_to_raise_it(
    start_dev_server: StartDevServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Imported here: this module's workflow is loaded in the sandbox, which must not run the CLI's imports.
    from task_scheduler.cli import main

    server = asyncio.run(start_dev_server(retention=timedelta(days=1)))
    monkeypatch.chdir(tmp_path)  # no .env of the repository
    monkeypatch.setenv("TEMPORAL_ADDRESS", server.address)

    assert main(["setup"]) == 0
    said = capsys.readouterr()
    assert "search attributes already registered" in said.out
    assert "namespace default keeps finished tasks for 1 day\n" in said.out
    hint = f"temporal operator namespace update --namespace default --retention {DEV_SERVER_RETENTION.days}d"
    assert hint in said.err


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


async def test_devserver_refuses_a_port_in_use_naming_it_its_holder_and_the_option(
    temporal_server: DevServer,
) -> None:
    with pytest.raises(PortTaken) as refused:
        DevServer(port=temporal_server.port).start()

    said = str(refused.value)
    assert f"port {temporal_server.port} on 127.0.0.1 (the Temporal server) is already in use" in said
    assert f"by pid {temporal_server.pid} (" in said and "start-dev" in said
    assert "(--port)" in said


def test_devserver_refuses_a_bind_address_it_cannot_serve() -> None:
    with pytest.raises(DevServerError, match=r"cannot be bound to 198\.18\.0\.10(.|\n)*Bind 0\.0\.0\.0"):
        DevServer(ip="198.18.0.10")


def test_devserver_bound_to_every_interface_refuses_a_port_in_use_on_loopback(
    temporal_server: DevServer,
) -> None:
    server = DevServer(ip="0.0.0.0", port=temporal_server.port)

    assert server.command()[server.command().index("--ip") + 1] == "0.0.0.0"
    assert server.address == f"127.0.0.1:{temporal_server.port}"  # local clients dial loopback
    with pytest.raises(PortTaken, match="already in use"):
        server.start()


@activity.defn
async def idle_activity() -> None:
    return None


async def _poller_last_access(client: Client, task_queue: str) -> datetime | None:
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    )
    pollers = (await client.workflow_service.describe_task_queue(request)).pollers
    return max((p.last_access_time.ToDatetime(UTC) for p in pollers), default=None)


async def _first_poll(client: Client, task_queue: str, deadline: float) -> datetime:
    while (last := await _poller_last_access(client, task_queue)) is None:
        assert time.monotonic() < deadline, "the worker's poller never showed"
        await asyncio.sleep(0.2)
    return last


async def test_devserver_idle_poller_polls_again_within_seconds(
    temporal_client: Client, task_queue: str
) -> None:
    # Worker liveness is read from the poller list. With Temporal's 60 s long polls a live idle worker's
    # last access grew ~52 s old; `matching.longPollExpirationInterval` at 10 s keeps it under ~10 s.
    async with Worker(temporal_client, task_queue=task_queue, activities=[idle_activity]):
        deadline = time.monotonic() + 20
        first = last = await _first_poll(temporal_client, task_queue, deadline)
        ages: list[float] = []
        while last - first < timedelta(seconds=5):
            oldest = max(ages, default=0.0)
            assert time.monotonic() < deadline, f"no poll 5 s after the first (oldest seen: {oldest:.1f} s)"
            await asyncio.sleep(0.2)
            last = await _poller_last_access(temporal_client, task_queue) or last
            ages.append((datetime.now(UTC) - last).total_seconds())

    assert max(ages) <= 11
