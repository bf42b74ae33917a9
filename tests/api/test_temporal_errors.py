"""Temporal's refusals over real HTTP, each produced by a real Temporal server: a namespace without the
search attributes (INVALID_ARGUMENT), a namespace that does not exist, a server that refuses updates
(PERMISSION_DENIED) and rate-limits visibility (RESOURCE_EXHAUSTED), and no server at all. Each gets its
own status and says what to do; none is a 500, and `/health` answers a report whatever fails."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from api_support import MakeClient, ServeApp, wait_for
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig, RPCError

from task_scheduler.devserver import DevServer, free_port
from task_scheduler.settings import Settings

# Updates refused as not permitted; at most one visibility request a second.
LOCKED_DOWN = {
    "frontend.enableUpdateWorkflowExecution": "false",
    "frontend.namespaceRPS.visibility": "1",
    "frontend.globalNamespaceRPS.visibility": "1",
}
# The client's own retries of a rate-limited call last seconds: a test client gives up at once.
NO_RETRIES = RetryConfig(
    initial_interval_millis=10, max_interval_millis=20, max_elapsed_time_millis=200, max_retries=1
)


async def _client(address: str, namespace: str, **options: Any) -> Client:
    return await Client.connect(
        address, namespace=namespace, data_converter=pydantic_data_converter, **options
    )


@pytest.fixture
async def bare_namespace(temporal_server: DevServer) -> str:
    """A namespace of the session's server without the custom search attributes (`setup` never ran)."""
    name = f"bare-{uuid.uuid4().hex[:8]}"
    client = await _client(temporal_server.address, temporal_server.namespace)
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=timedelta(days=1))
    )
    bare = await _client(temporal_server.address, name)

    async def usable() -> bool:
        try:
            await bare.count_workflows()
        except RPCError:
            return False  # not in the frontend's namespace cache yet
        return True

    await wait_for(usable, f"namespace {name} to be usable")
    return name


async def test_namespace_without_search_attributes_is_503_saying_run_setup(
    serve_app: ServeApp,
    api_settings: Settings,
    api_lab: Any,
    make_client: MakeClient,
    temporal_server: DevServer,
    bare_namespace: str,
) -> None:
    settings = api_settings.model_copy(update={"temporal_namespace": bare_namespace})
    url = await serve_app(settings=settings, client=await _client(temporal_server.address, bare_namespace))
    operator = make_client("operator", base_url=url)

    started = await operator.post("/tasks", json={"workflow_name": api_lab.workflow("quick")})
    listed = await operator.get("/tasks", params={"state": "ERROR"})

    for response, says in [(started, "no mapping defined for search attribute"), (listed, "TaskState")]:
        assert response.status_code == 503, response.text
        detail = response.json()["detail"]
        assert detail.startswith("Temporal's namespace lacks the search attributes tasks need (")
        assert says in detail
        assert "run `task-scheduler setup` against it" in detail


async def test_namespace_that_does_not_exist_is_503_naming_temporal_namespace(
    serve_app: ServeApp, api_settings: Settings, make_client: MakeClient, temporal_server: DevServer
) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    settings = api_settings.model_copy(update={"temporal_namespace": missing})
    url = await serve_app(settings=settings, client=await _client(temporal_server.address, missing))
    viewer = make_client("viewer", base_url=url)

    responses = [await viewer.get("/tasks"), await viewer.get("/tasks/some-task")]
    health = await make_client(base_url=url).get("/health")

    for response in responses:
        assert response.status_code == 503, response.text
        assert response.json()["detail"] == (
            f"Namespace {missing} is not found: check TEMPORAL_NAMESPACE, or create the namespace "
            "(`temporal operator namespace create NAME`) and run `task-scheduler setup`"
        )
    assert health.status_code == 503
    assert health.json()["temporal"] is False


@pytest.fixture
async def locked_down(start_dev_server: Any) -> Client:
    """A client of a server of the test's own that refuses updates and rate-limits visibility."""
    server = await start_dev_server(extra_dynamic_config=LOCKED_DOWN)
    return await _client(server.address, server.namespace, retry_config=NO_RETRIES)


async def test_permission_denied_is_503_naming_the_temporal_credentials(
    serve_app: ServeApp, api_settings: Settings, make_client: MakeClient, locked_down: Client
) -> None:
    url = await serve_app(client=locked_down)

    response = await make_client("operator", base_url=url).post("/tasks/some-task/pause")

    assert response.status_code == 503, response.text
    assert response.json()["detail"] == (
        "Temporal refused the API's request (PERMISSION_DENIED: UpdateWorkflowExecution operation is "
        "disabled on this namespace.): check the Temporal credentials the API runs with "
        "(TEMPORAL_API_KEY, or TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH) and what "
        "the namespace allows them"
    )


async def test_rate_limited_request_is_503_with_retry_advice_and_retry_after(
    serve_app: ServeApp, make_client: MakeClient, locked_down: Client
) -> None:
    url = await serve_app(client=locked_down)
    viewer = make_client("viewer", base_url=url)

    responses = await asyncio.gather(*(viewer.get("/tasks") for _ in range(20)))

    assert {r.status_code for r in responses} <= {200, 503}, [r.text for r in responses]
    limited = [r for r in responses if r.status_code == 503]
    assert limited, "the server's visibility rate limit of 1 RPS refused none of 20 requests"
    for response in limited:
        assert response.headers["Retry-After"] == "5"
        detail = response.json()["detail"]
        assert detail.startswith("Temporal is overloaded or rate-limits this namespace (namespace rate limit")
        assert "retry in a few seconds" in detail


async def test_health_answers_a_report_not_a_500_whatever_fails(
    serve_app: ServeApp, api_settings: Settings, make_client: MakeClient
) -> None:
    # A lab's own lazily connected client, to a port where no Temporal listens: its calls raise a
    # RuntimeError, which no route expected.
    nowhere = f"127.0.0.1:{free_port()}"
    lazy = await Client.connect(nowhere, lazy=True, retry_config=NO_RETRIES)
    url = await serve_app(settings=api_settings.model_copy(update={"temporal_address": nowhere}), client=lazy)

    health = await make_client(base_url=url).get("/health")
    tasks = await make_client("viewer", base_url=url).get("/tasks")

    assert health.status_code == 503, health.text
    report = health.json()
    assert (report["temporal"], report["temporal_address"]) == (False, nowhere)
    assert "Failed client connect" in report["detail"]
    assert tasks.status_code == 503
    assert tasks.json()["detail"].startswith("cannot reach Temporal: Failed client connect")
