"""The app factory: a lab's own routes, OpenAPI, the secret it refuses to start without, and Temporal
unreachable (503 with a message that says so, and a health report that says so too)."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import MakeClient, ServeApp
from fastapi import APIRouter
from pydantic import SecretStr

from task_scheduler.api.app import create_app
from task_scheduler.api.deps import Viewer
from task_scheduler.devserver import free_port
from task_scheduler.engine.errors import MissingSecretError, WeakSecretError
from task_scheduler.settings import Settings

# Seed users' `init_extra_routes`: a lab's own router, using the API's roles.
barcode = APIRouter(prefix="/barcode", tags=["lab extras"])


@barcode.get("/{code}")
async def read_barcode(code: str, who: Viewer) -> dict[str, str]:
    """Decode a plate barcode (a lab's own route)."""
    return {"plate": code.upper(), "asked_by": who.name}


async def test_extra_router_is_served_with_the_api_security(
    serve_app: ServeApp, make_client: MakeClient
) -> None:
    url = await serve_app(extra_routers=[barcode])

    response = await make_client("viewer", base_url=url).get("/barcode/p-17")

    assert response.status_code == 200
    assert response.json() == {"plate": "P-17", "asked_by": "test-viewer"}
    assert (await make_client(base_url=url).get("/barcode/p-17")).status_code == 401
    openapi = (await make_client(base_url=url).get("/openapi.json")).json()
    assert "/barcode/{code}" in openapi["paths"]


async def test_openapi_documents_every_route_in_one_line(make_client: MakeClient) -> None:
    anonymous = make_client()

    docs = await anonymous.get("/docs")
    openapi = (await anonymous.get("/openapi.json")).json()

    assert docs.status_code == 200
    operations = [(path, op) for path, item in openapi["paths"].items() for op in item.values()]
    assert len(operations) >= 20
    for path, operation in operations:
        assert operation.get("description"), f"{path} has no description"
        assert "\n" not in operation["description"].strip(), f"{path}: more than one line"


@pytest.mark.parametrize("secret", [None, "", "   "])
def test_app_without_a_secret_refuses_to_start(api_settings: Settings, secret: str | None) -> None:
    settings = api_settings.model_copy(update={"secret": None if secret is None else SecretStr(secret)})

    with pytest.raises(MissingSecretError, match="TASK_SCHEDULER_SECRET"):
        create_app(settings, lab=None)


def test_app_with_a_short_secret_refuses_to_start(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"secret": SecretStr("hunter2")})

    with pytest.raises(WeakSecretError, match="too short"):
        create_app(settings)


def test_app_reads_its_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, api_lab: Any
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the repository
    monkeypatch.setenv("TASK_SCHEDULER_SECRET", "s" * 40)
    monkeypatch.setenv("TASK_SCHEDULER_AUTHORIZED_IPS", "10.0.0.0/8, 192.168.1.20")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.lab:7233")
    monkeypatch.setenv("TASK_SCHEDULER_NODES_FILE", str(api_lab.nodes_file))
    monkeypatch.setenv("TASK_SCHEDULER_WORKFLOWS_FILE", str(api_lab.workflows_file))

    app = create_app()

    settings = app.state.settings
    assert settings.temporal_address == "temporal.lab:7233"
    assert [str(n) for n in settings.authorized_ips] == ["10.0.0.0/8", "192.168.1.20/32"]
    assert [w.name for w in app.state.lab.workflows] == [w.name for w in api_lab.config.workflows]
    monkeypatch.delenv("TASK_SCHEDULER_SECRET")
    with pytest.raises(MissingSecretError):
        create_app()


@pytest.fixture
async def unreachable_url(serve_app: ServeApp, api_settings: Settings) -> str:
    """An API whose Temporal address is a closed port, and no client connected yet."""
    settings = api_settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    return await serve_app(settings=settings, client=None)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tasks"),
        ("POST", "/tasks"),
        ("GET", "/tasks/some-task"),
        ("POST", "/tasks/some-task/pause"),
        ("GET", "/nodes"),
        ("POST", "/nodes/some-node/restart"),
        ("POST", "/lab/pause"),
    ],
)
async def test_temporal_unreachable_is_503_saying_so(
    unreachable_url: str, make_client: MakeClient, api_lab: Any, method: str, path: str
) -> None:
    body = {"workflow_name": api_lab.workflow("quick")} if path == "/tasks" else None

    response = await make_client("admin", base_url=unreachable_url).request(method, path, json=body)

    assert response.status_code == 503, response.text
    assert response.json()["detail"].startswith("cannot reach Temporal at 127.0.0.1:")


async def test_workflows_are_served_while_temporal_is_unreachable(
    unreachable_url: str, make_client: MakeClient
) -> None:
    response = await make_client("viewer", base_url=unreachable_url).get("/workflows")

    assert response.status_code == 200


async def test_health_is_503_while_temporal_is_unreachable(
    unreachable_url: str, make_client: MakeClient
) -> None:
    response = await make_client(base_url=unreachable_url).get("/health")

    assert response.status_code == 503
    health = response.json()
    assert (health["api"], health["temporal"], health["workflow_worker"]) == ("ok", False, False)
    assert health["detail"].startswith("cannot reach Temporal at 127.0.0.1:")


async def test_temporal_lost_after_connecting_is_503(
    start_dev_server: Any, serve_app: ServeApp, make_client: MakeClient, api_settings: Settings
) -> None:
    server = await start_dev_server()
    settings = api_settings.model_copy(update={"temporal_address": server.address, "rpc_timeout_s": 2.0})
    url = await serve_app(settings=settings, client=None)
    viewer = make_client("viewer", base_url=url)
    assert (await viewer.get("/tasks")).status_code == 200
    server.kill()

    listing = await viewer.get("/tasks")
    health = await viewer.get("/health")

    assert listing.status_code == 503, listing.text
    assert "Temporal" in listing.json()["detail"]
    assert health.status_code == 503
    assert health.json()["temporal"] is False
