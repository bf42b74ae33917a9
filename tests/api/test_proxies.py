"""Forwarded headers over real HTTP, served as the CLI serves the API (`server_config`): X-Forwarded-For
is believed only from TASK_SCHEDULER_TRUSTED_PROXIES, for the allowlist, the access log and the seed's
`/token/{identifier}`. The callers dial from addresses of their own on the loopback network (127.0.0.2
is another machine, or a reverse proxy, as the API sees it)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
from api_support import ServeApp, bearer, token

from task_scheduler.api.app import create_app
from task_scheduler.api.serve import server_config
from task_scheduler.settings import Settings

PROXY = "127.0.0.2"  # the address a reverse proxy (or another caller) dials the API from
OUTSIDE = "10.0.0.0/8"  # an allowlist neither 127.0.0.1 nor the proxy is in


@pytest.fixture
async def dial_from() -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """`dial_from(url, address)`: a client whose connections leave from `address`."""
    async with contextlib.AsyncExitStack() as stack:

        def make(url: str, address: str = "127.0.0.1") -> httpx.AsyncClient:
            transport = httpx.AsyncHTTPTransport(local_address=address)
            client = httpx.AsyncClient(base_url=url, transport=transport, headers=bearer(token("viewer")))
            stack.push_async_callback(client.aclose)
            return client

        yield make


def _settings(api_settings: Settings, allowed: list[str], trusted: list[str]) -> Settings:
    return api_settings.model_copy(
        update={
            "authorized_ips": [ip_network(a) for a in allowed],
            "trusted_proxies": [ip_network(t) for t in trusted],
        }
    )


def _forwarded(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def _access_clients(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name == "task_scheduler.access"]
    return [line.split()[0] for line in lines]


def test_server_config_believes_no_forwarded_header_unless_proxies_are_named(
    api_settings: Settings, api_lab: Any
) -> None:
    default = server_config(create_app(api_settings, lab=api_lab.config))
    named = server_config(
        create_app(_settings(api_settings, [OUTSIDE], [PROXY, "10.1.0.0/16"]), lab=api_lab.config)
    )

    assert api_settings.trusted_proxies == Settings().trusted_proxies == []
    assert default.proxy_headers is False
    assert (named.proxy_headers, named.forwarded_allow_ips) == (True, ["127.0.0.2/32", "10.1.0.0/16"])


async def test_forwarded_address_from_a_local_proxy_nobody_trusted_does_not_pass_the_allowlist(
    serve_app: ServeApp, api_settings: Settings, dial_from: Callable[..., httpx.AsyncClient]
) -> None:
    # uvicorn's default believes 127.0.0.1: any local proxy or tunnel let a caller claim an allowed address.
    url = await serve_app(settings=_settings(api_settings, [OUTSIDE], []))

    response = await dial_from(url).get("/workflows", headers=_forwarded("10.1.2.3"))

    assert response.status_code == 403
    assert response.json()["detail"] == "address 127.0.0.1 is not allowed (TASK_SCHEDULER_AUTHORIZED_IPS)"


@pytest.mark.parametrize("trusted", [[], ["127.0.0.1/32"]], ids=["no-proxy-trusted", "another-proxy-trusted"])
async def test_caller_outside_the_allowlist_claiming_to_be_local_is_refused(
    serve_app: ServeApp,
    api_settings: Settings,
    dial_from: Callable[..., httpx.AsyncClient],
    trusted: list[str],
) -> None:
    url = await serve_app(settings=_settings(api_settings, ["127.0.0.1/32"], trusted))
    outsider = dial_from(url, PROXY)

    for path in ("/workflows", "/token/intruder", "/health"):
        response = await outsider.get(path, headers=_forwarded("127.0.0.1"))

        assert response.status_code == 403, path
        assert response.json()["detail"] == f"address {PROXY} is not allowed (TASK_SCHEDULER_AUTHORIZED_IPS)"


async def test_behind_a_trusted_proxy_the_forwarded_address_is_the_caller(
    serve_app: ServeApp,
    api_settings: Settings,
    dial_from: Callable[..., httpx.AsyncClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="task_scheduler.access")
    url = await serve_app(settings=_settings(api_settings, [OUTSIDE], [PROXY]))
    proxy = dial_from(url, PROXY)

    allowed = await proxy.get("/workflows", headers=_forwarded("10.1.2.3"))
    refused = await proxy.get("/workflows", headers=_forwarded("192.0.2.7"))
    # A caller who wrote its own header: the proxy appends the address it saw, and that one counts.
    spoofed = await proxy.get("/workflows", headers=_forwarded("10.1.2.3, 192.0.2.7"))
    unforwarded = await proxy.get("/workflows")

    assert allowed.status_code == 200, allowed.text
    assert [refused.status_code, spoofed.status_code, unforwarded.status_code] == [403, 403, 403]
    assert "address 192.0.2.7 is not allowed" in refused.json()["detail"]
    assert "address 192.0.2.7 is not allowed" in spoofed.json()["detail"]
    assert f"address {PROXY} is not allowed" in unforwarded.json()["detail"]
    assert _access_clients(caplog) == [
        "client=10.1.2.3",
        "client=192.0.2.7",
        "client=192.0.2.7",
        f"client={PROXY}",
    ]


async def test_token_route_refuses_a_request_forwarded_by_a_local_proxy_nobody_trusted(
    serve_app: ServeApp, api_settings: Settings, dial_from: Callable[..., httpx.AsyncClient]
) -> None:
    url = await serve_app(settings=_settings(api_settings, ["127.0.0.0/8"], []))
    local = dial_from(url)

    forwarded = await local.get("/token/bench-pc", headers=_forwarded("203.0.113.9"))
    rfc7239 = await local.get("/token/bench-pc", headers={"Forwarded": "for=203.0.113.9"})
    direct = await local.get("/token/bench-pc")

    assert [forwarded.status_code, rfc7239.status_code] == [403, 403]
    assert "own machine" in forwarded.json()["detail"]
    assert "TASK_SCHEDULER_TRUSTED_PROXIES" in forwarded.json()["detail"]
    assert direct.status_code == 200, direct.text


async def test_token_route_behind_a_trusted_local_proxy_serves_local_callers_only(
    serve_app: ServeApp, api_settings: Settings, dial_from: Callable[..., httpx.AsyncClient]
) -> None:
    url = await serve_app(settings=_settings(api_settings, ["0.0.0.0/0"], ["127.0.0.0/8"]))
    proxy = dial_from(url, PROXY)

    local = await proxy.get("/token/bench-pc", headers=_forwarded("127.0.0.1"))
    remote = await proxy.get("/token/bench-pc", headers=_forwarded("203.0.113.9"))
    spoofed = await proxy.get("/token/bench-pc", headers=_forwarded("127.0.0.1, 203.0.113.9"))

    assert local.status_code == 200, local.text
    assert local.json()["role"] == "operator"
    assert [remote.status_code, spoofed.status_code] == [403, 403]
    assert "own machine" in remote.json()["detail"]
