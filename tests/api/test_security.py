"""Security over HTTP: bearer tokens and roles, the IP allowlist, the seed's `/token/{identifier}`, and
the access log line of every request."""

from __future__ import annotations

import logging
import socket
from ipaddress import ip_address, ip_network
from typing import Any

import httpx
import jwt
import pytest
from api_support import SECRET, MakeClient, ServeApp, bearer, token
from fastapi import APIRouter

from task_scheduler.api.deps import Viewer

ROUTES = [
    ("GET", "/tasks"),
    ("POST", "/tasks"),
    ("GET", "/tasks/some-task"),
    ("POST", "/tasks/some-task/pause"),
    ("POST", "/tasks/some-task/continue"),
    ("POST", "/tasks/some-task/cancel"),
    ("GET", "/workflows"),
    ("GET", "/nodes"),
    ("GET", "/nodes/some-node"),
    ("POST", "/nodes/some-node/restart"),
    ("POST", "/lab/pause"),
    ("POST", "/lab/resume"),
    ("GET", "/config"),
    ("POST", "/config/reload"),
    ("POST", "/tokens"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_route_without_token_is_401(anonymous: httpx.AsyncClient, method: str, path: str) -> None:
    response = await anonymous.request(method, path)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]


@pytest.mark.parametrize(
    ("credentials", "says"),
    [
        (token("admin", secret="another-secret-" + "x" * 40), "invalid token"),
        (token("admin", ttl_s=-10), "expired"),
        ("not-a-jwt", "invalid token"),
        (jwt.encode({"sub": "mallory", "role": "admin"}, SECRET, algorithm="HS256"), "invalid token"),
        (jwt.encode({"sub": "mallory", "role": "root", "exp": 2**40}, SECRET, algorithm="HS256"), "role"),
        (
            jwt.encode({"sub": "mallory", "role": "admin", "exp": 2**40}, None, algorithm="none"),
            "invalid token",
        ),
    ],
    ids=["forged", "expired", "garbage", "no-expiry", "unknown-role", "unsigned"],
)
async def test_bad_token_is_401(make_client: MakeClient, credentials: str, says: str) -> None:
    response = await make_client(headers=bearer(credentials)).get("/tasks")

    assert response.status_code == 401
    assert says in response.json()["detail"]


async def test_token_of_another_scheme_is_401(make_client: MakeClient) -> None:
    response = await make_client(headers={"Authorization": f"Basic {token('admin')}"}).get("/tasks")

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("role", "method", "path", "needed"),
    [
        ("viewer", "POST", "/tasks", "operator"),
        ("viewer", "POST", "/tasks/some-task/pause", "operator"),
        ("viewer", "POST", "/tasks/some-task/continue", "operator"),
        ("viewer", "POST", "/tasks/some-task/cancel", "operator"),
        ("viewer", "POST", "/nodes/some-node/restart", "operator"),
        ("viewer", "POST", "/lab/pause", "operator"),
        ("viewer", "POST", "/lab/resume", "operator"),
        ("operator", "POST", "/config/reload", "admin"),
        ("operator", "POST", "/tokens", "admin"),
    ],
)
async def test_too_low_a_role_is_403(
    make_client: MakeClient, role: str, method: str, path: str, needed: str
) -> None:
    response = await make_client(role).request(method, path, json={"workflow_name": "x", "name": "x"})

    assert response.status_code == 403
    assert response.json()["detail"] == f"this needs the {needed} role; your token has {role}"


async def test_admin_makes_tokens_of_any_role(admin: httpx.AsyncClient, make_client: MakeClient) -> None:
    response = await admin.post("/tokens", json={"name": "robot", "role": "operator"})

    assert response.status_code == 200, response.text
    made = response.json()
    assert (made["name"], made["role"]) == ("robot", "operator")
    robot = make_client(headers=bearer(made["token"]))
    assert (await robot.post("/lab/resume")).status_code == 200
    assert (await robot.post("/config/reload")).status_code == 403
    assert (await admin.post("/tokens", json={"name": "x", "role": "root"})).status_code == 422


async def test_localhost_caller_gets_a_viewer_token(
    anonymous: httpx.AsyncClient, make_client: MakeClient
) -> None:
    response = await anonymous.get("/token/bench-pc")

    assert response.status_code == 200, response.text
    given = response.json()
    assert (given["name"], given["role"]) == ("bench-pc", "viewer")
    holder = make_client(headers=bearer(given["token"]))
    assert (await holder.get("/tasks")).status_code == 200
    refused = await holder.post("/tasks", json={"workflow_name": "x"})
    assert refused.status_code == 403
    assert "your token has viewer" in refused.json()["detail"]


def _non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (the route used to reach the outside)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent, only a route is chosen
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if ip_address(address).is_loopback or address == "0.0.0.0" else address


async def test_token_route_refuses_a_caller_from_another_machine(
    serve_app: ServeApp, make_client: MakeClient, api_settings: Any
) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to call from")
    anywhere = api_settings.model_copy(update={"authorized_ips": [ip_network("0.0.0.0/0")]})
    url = await serve_app(settings=anywhere, host=address)

    response = await make_client(base_url=url).get("/token/intruder")

    assert response.status_code == 403
    assert "own machine" in response.json()["detail"]


async def test_address_outside_the_allowlist_is_403_even_with_an_admin_token(
    serve_app: ServeApp, make_client: MakeClient, api_settings: Any
) -> None:
    elsewhere = api_settings.model_copy(update={"authorized_ips": [ip_network("10.0.0.0/8")]})
    url = await serve_app(settings=elsewhere)

    for path in ("/tasks", "/health", "/token/me"):
        response = await make_client("admin", base_url=url).get(path)
        assert response.status_code == 403, path
        assert response.json()["detail"] == "address 127.0.0.1 is not allowed (TASK_SCHEDULER_AUTHORIZED_IPS)"


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "task_scheduler.access"]


async def test_access_log_has_a_line_per_request_with_who_what_and_outcome(
    make_client: MakeClient, serve_app: ServeApp, api_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="task_scheduler.access")
    viewer = make_client("viewer")
    await viewer.get("/workflows")
    await viewer.get("/workflows/no-such-workflow")
    await viewer.post("/lab/pause")
    await make_client().get("/nodes")
    await make_client(headers=bearer("forged")).get("/nodes")
    elsewhere = api_settings.model_copy(update={"authorized_ips": [ip_network("10.0.0.0/8")]})
    await make_client("admin", base_url=await serve_app(settings=elsewhere)).get("/tasks")

    assert _access_lines(caplog) == [
        "client=127.0.0.1 identity=test-viewer(viewer) method=GET path=/workflows status=200 allowed",
        "client=127.0.0.1 identity=test-viewer(viewer) method=GET path=/workflows/no-such-workflow "
        "status=404 allowed",
        "client=127.0.0.1 identity=test-viewer(viewer) method=POST path=/lab/pause status=403 refused",
        "client=127.0.0.1 identity=- method=GET path=/nodes status=401 refused",
        "client=127.0.0.1 identity=- method=GET path=/nodes status=401 refused",
        "client=127.0.0.1 identity=- method=GET path=/tasks status=403 refused",
    ]


crashing = APIRouter()


@crashing.get("/crash")
async def crash(who: Viewer) -> None:
    """Fail as a bug in a lab's own route would."""
    raise RuntimeError("a bug in a lab's route")


async def test_access_log_has_a_line_for_a_request_that_crashed(
    serve_app: ServeApp, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="task_scheduler.access")
    url = await serve_app(extra_routers=[crashing])

    response = await make_client("viewer", base_url=url).get("/crash")

    assert response.status_code == 500
    assert _access_lines(caplog) == [
        "client=127.0.0.1 identity=test-viewer(viewer) method=GET path=/crash status=500 allowed"
    ]
