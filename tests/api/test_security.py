"""Security over HTTP: bearer tokens and roles, the IP allowlist, the seed's `/token/{identifier}`, and
the access log line of every request. Every operation of the OpenAPI schema (read from the app, so a
route added later is covered) is refused without a token, with a forged or expired one, with too low a
role (the role its security requirement names), and from an address outside the allowlist; each refusal
has its access log line."""

from __future__ import annotations

import base64
import logging
import re
import socket
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from api_support import SECRET, MakeClient, ServeApp, bearer, token
from fastapi import APIRouter
from pydantic import SecretStr
from starlette.routing import Mount

from task_scheduler.api.app import create_app
from task_scheduler.api.deps import Viewer
from task_scheduler.engine.config import LabConfig
from task_scheduler.glas.app import install_seed_api
from task_scheduler.settings import Settings

PUBLIC = {("GET", "/health"), ("GET", "/metrics"), ("GET", "/token/{identifier}")}
# Outside the OpenAPI schema, public too: the OpenAPI pages, the lab page, and their files' folders.
PAGES = {
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/lab",
    "/",
    "/docs-assets",
    "/lab/assets",
}
API_PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"
NOT_OURS = "invalid token: not a token this lab issued (make one with `task-scheduler token create NAME`)"
ROLES = ["viewer", "operator", "admin"]


@dataclass(frozen=True)
class Operation:
    """One operation of the API's OpenAPI schema, and the role its security requirement names."""

    method: str
    template: str
    role: str | None  # None: public
    seeds: bool = False  # one of the seed's routes (glas/routes.py): it refuses in the seed's words

    def refusal(self, response: httpx.Response) -> str:
        """Why the token was refused: the seed's routes say it in a bare JSON string, ours in `detail`."""
        body = response.json()
        if self.seeds:
            assert isinstance(body, str), body
            return body
        return str(body["detail"])

    @property
    def path(self) -> str:
        """The template with each `{parameter}` filled in with a valid, unknown value."""
        return re.sub(r"\{([^}]+)\}", lambda m: "some-" + m.group(1).replace("_", "-"), self.template)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def operations_of(schema: dict[str, Any]) -> list[Operation]:
    """Every operation of an OpenAPI schema: a route added later is covered without a change here."""
    found = []
    for template, methods in schema["paths"].items():
        for method, operation in methods.items():
            roles = {
                role
                for requirement in operation.get("security", [])
                for role in requirement.get("HTTPBearer", [])
            }
            assert len(roles) <= 1, f"{method.upper()} {template} names several roles: {roles}"
            seeds = any(tag.startswith("GLAS ") for tag in operation.get("tags", []))
            found.append(Operation(method.upper(), template, roles.pop() if roles else None, seeds))
    return found


def _schema() -> dict[str, Any]:
    """The schema of an app as the CLI serves it: ours, and the seed's routes beside them."""
    app = create_app(Settings(secret=SecretStr(SECRET)), lab=LabConfig(nodes=[], workflows=[]))
    install_seed_api(app)
    return app.openapi()


# The app's own schema (the served app of the session is checked to have the same operations).
OPERATIONS = operations_of(_schema())
GUARDED = [o for o in OPERATIONS if o.role is not None]
ABOVE_VIEWER = [(o, role) for o in GUARDED for role in ROLES[: ROLES.index(o.role or "viewer")]]


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "task_scheduler.access"]


def assert_refusal_logged(
    caplog: pytest.LogCaptureFixture, operation: Operation, status: int, identity: str = "-"
) -> None:
    line = (
        f"client=127.0.0.1 identity={identity} method={operation.method} path={operation.path} "
        f"status={status} refused"
    )
    assert _access_lines(caplog) == [line]


async def test_every_operation_served_is_covered_and_only_health_metrics_and_token_are_public(
    anonymous: httpx.AsyncClient,
) -> None:
    served = operations_of((await anonymous.get("/openapi.json")).json())

    assert sorted(map(str, served)) == sorted(map(str, OPERATIONS))
    assert {(o.method, o.template) for o in OPERATIONS if o.role is None} == PUBLIC
    by_role = {str(o): o.role for o in GUARDED}
    # The README's table, for the routes it lists: a role changed by mistake shows here.
    assert by_role["POST /tasks"] == by_role["POST /nodes/{node_id}/restart"] == "operator"
    assert by_role["POST /lab/pause"] == by_role["POST /tasks/{task_id}/cancel"] == "operator"
    assert by_role["POST /config/reload"] == by_role["POST /tokens"] == "admin"
    assert by_role["GET /tasks"] == by_role["GET /nodes"] == by_role["GET /config"] == "viewer"


@pytest.mark.parametrize("operation", GUARDED, ids=str)
async def test_operation_without_token_is_401_and_logged(
    anonymous: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, operation: Operation
) -> None:
    caplog.set_level(logging.INFO, logger="task_scheduler.access")

    response = await anonymous.request(operation.method, operation.path)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    expected = "Not authenticated" if operation.seeds else "token"
    assert expected in operation.refusal(response)
    assert_refusal_logged(caplog, operation, 401)


@pytest.mark.parametrize(
    ("credentials", "says"),
    [
        (token("admin", secret="another-secret-" + "x" * 40), NOT_OURS),
        (token("admin", ttl_s=-10), "the token has expired"),
    ],
    ids=["forged", "expired"],
)
@pytest.mark.parametrize("operation", GUARDED, ids=str)
async def test_operation_with_a_forged_or_expired_admin_token_is_401_and_logged(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    operation: Operation,
    credentials: str,
    says: str,
) -> None:
    caplog.set_level(logging.INFO, logger="task_scheduler.access")

    response = await make_client(headers=bearer(credentials)).request(operation.method, operation.path)

    assert response.status_code == 401
    assert says in operation.refusal(response)
    assert_refusal_logged(caplog, operation, 401)


@pytest.mark.parametrize(("operation", "role"), ABOVE_VIEWER, ids=lambda v: str(v))
async def test_operation_with_too_low_a_role_is_403_and_logged(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, operation: Operation, role: str
) -> None:
    caplog.set_level(logging.INFO, logger="task_scheduler.access")

    response = await make_client(role).request(operation.method, operation.path)

    assert response.status_code == 403
    assert operation.refusal(response) == f"this needs the {operation.role} role; your token has {role}"
    assert_refusal_logged(caplog, operation, 403, identity=f"test-{role}({role})")


@pytest.fixture
async def elsewhere_url(serve_app: ServeApp, api_settings: Any) -> str:
    """An app whose allowlist does not hold 127.0.0.1, where the tests call from."""
    return await serve_app(
        settings=api_settings.model_copy(update={"authorized_ips": [ip_network("10.0.0.0/8")]})
    )


@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
async def test_operation_from_an_address_outside_the_allowlist_is_403_even_for_admin_and_logged(
    make_client: MakeClient, elsewhere_url: str, caplog: pytest.LogCaptureFixture, operation: Operation
) -> None:
    caplog.set_level(logging.INFO, logger="task_scheduler.access")

    response = await make_client("admin", base_url=elsewhere_url).request(operation.method, operation.path)

    assert response.status_code == 403
    assert response.json()["detail"] == "address 127.0.0.1 is not allowed (TASK_SCHEDULER_AUTHORIZED_IPS)"
    assert_refusal_logged(caplog, operation, 403)


def forged_token() -> str:
    """Three segments whose header is not UTF-8: the decoder's own message names the byte it choked on."""
    header = base64.urlsafe_b64encode(b"\xb7" * 12).decode().rstrip("=")
    return f"{header}.e30.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("credentials", "says"),
    [
        ("not-a-jwt", NOT_OURS),
        (forged_token(), NOT_OURS),
        (jwt.encode({"sub": "mallory", "role": "admin"}, SECRET, algorithm="HS256"), NOT_OURS),
        (
            jwt.encode({"sub": "mallory", "role": "root", "iat": 0, "exp": 2**40}, SECRET, algorithm="HS256"),
            "the token names no known role (viewer, operator, admin)",
        ),
        (jwt.encode({"sub": "mallory", "role": "admin", "exp": 2**40}, None, algorithm="none"), NOT_OURS),
        (token("admin", ttl_s=-10), "the token has expired: ask an admin for a new one"),
    ],
    ids=["garbage", "forged-bytes", "no-expiry", "unknown-role", "unsigned", "expired"],
)
async def test_bad_token_is_401_with_a_plain_reason(
    make_client: MakeClient, credentials: str, says: str
) -> None:
    response = await make_client(headers=bearer(credentials)).get("/tasks")

    assert response.status_code == 401
    assert response.json()["detail"] == says


async def test_forged_token_detail_goes_to_the_api_s_debug_log_only(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="task_scheduler.api.security")

    response = await make_client(headers=bearer(forged_token())).get("/tasks")

    assert "codec" not in response.text and "0xb7" not in response.text
    (logged,) = [r for r in caplog.records if r.name == "task_scheduler.api.security"]
    assert logged.levelno == logging.DEBUG
    assert "DecodeError: Invalid header string: 'utf-8' codec can't decode byte 0xb7" in logged.getMessage()


async def test_pages_outside_the_schema_are_public_and_api_md_lists_each(
    anonymous: httpx.AsyncClient,
) -> None:
    app = create_app(Settings(secret=SecretStr(SECRET)), lab=LabConfig(nodes=[], workflows=[]))
    install_seed_api(app)
    outside = {
        route.path
        for route in app.routes
        if isinstance(route, Mount) or not getattr(route, "include_in_schema", True)
    }
    listed = API_PAGE.read_text(encoding="utf-8").split("These routes need no token")[1].split("\n\n")[1]

    assert outside == PAGES
    for path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/lab"):
        assert (await anonymous.get(path)).status_code == 200, path
    assert (await anonymous.get("/")).headers["location"].endswith("/lab")
    assert (await anonymous.get("/docs-assets/swagger-ui.css")).status_code == 200
    assert (await anonymous.get("/lab/assets/lab.css")).status_code == 200
    for path in [*PAGES, *(template for _, template in PUBLIC)]:
        assert re.search(rf"`(GET )?{re.escape(path)}/?`", listed), path  # the whole path, not a prefix


async def test_token_of_another_scheme_is_401(make_client: MakeClient) -> None:
    response = await make_client(headers={"Authorization": f"Basic {token('admin')}"}).get("/tasks")

    assert response.status_code == 401


async def test_admin_makes_tokens_of_any_role(admin: httpx.AsyncClient, make_client: MakeClient) -> None:
    response = await admin.post("/tokens", json={"name": "robot", "role": "operator"})

    assert response.status_code == 200, response.text
    made = response.json()
    assert (made["name"], made["role"]) == ("robot", "operator")
    robot = make_client(headers=bearer(made["token"]))
    assert (await robot.post("/lab/resume")).status_code == 200
    assert (await robot.post("/config/reload")).status_code == 403
    assert (await admin.post("/tokens", json={"name": "x", "role": "root"})).status_code == 422


async def test_localhost_caller_gets_an_operator_token_as_a_seed_client_needs(
    anonymous: httpx.AsyncClient, make_client: MakeClient
) -> None:
    response = await anonymous.get("/token/bench-pc")

    assert response.status_code == 200, response.text
    given = response.json()
    assert (given["name"], given["role"]) == ("bench-pc", "operator")
    holder = make_client(headers=bearer(given["token"]))
    assert (await holder.post("/tasks", json={"workflow_name": "no-such-workflow"})).status_code == 404
    refused = await holder.post("/config/reload")
    assert refused.status_code == 403
    assert "your token has operator" in refused.json()["detail"]


async def test_localhost_token_role_is_a_setting(
    serve_app: ServeApp, api_settings: Settings, make_client: MakeClient
) -> None:
    url = await serve_app(settings=api_settings.model_copy(update={"local_token_role": "viewer"}))

    given = (await make_client(base_url=url).get("/token/bench-pc")).json()
    holder = make_client(headers=bearer(given["token"]), base_url=url)

    assert given["role"] == "viewer"
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


async def test_token_route_refuses_a_web_page(anonymous: httpx.AsyncClient) -> None:
    """A page in a browser on the API's machine sends an Origin; where an API lets any origin read its
    answers (a GLAS project's, as the seed did), the page could take a token and act with it."""
    response = await anonymous.get("/token/bench-pc", headers={"Origin": "http://pages.example"})

    assert response.status_code == 403
    assert "not given to web pages" in response.json()["detail"]
