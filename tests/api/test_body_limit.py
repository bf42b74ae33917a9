"""A request body over 1 MiB is refused with 413 over real HTTP before anything parses it: by its
Content-Length before a byte of it is sent, and by its streamed bytes when it declares no length. A body
within the limit reaches the app as it was sent; the allowlist still comes first."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from ipaddress import ip_network
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from api_support import MakeClient, ServeApp, bearer, token

from task_scheduler.api.body_limit import MAX_BODY_BYTES

TOO_LARGE = (
    "the request body is over 1048576 bytes (1 MiB): send less (a task's args are at most 256 KiB of JSON)"
)


async def _answer_to_headers_only(url: str, path: str, length: int) -> tuple[int, dict[str, Any]]:
    """Send only a request's headers, declaring `length` bytes of body, and read the answer."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token('operator')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
        writer.write(head.encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)  # the server closes after its answer
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body)


async def test_body_declared_over_1_mib_is_413_before_it_is_sent(
    api_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="task_scheduler.access")

    status, body = await _answer_to_headers_only(api_url, "/tasks", MAX_BODY_BYTES + 1)

    assert (status, body) == (413, {"detail": TOO_LARGE})
    lines = [r.getMessage() for r in caplog.records if r.name == "task_scheduler.access"]
    assert lines == ["client=127.0.0.1 identity=- method=POST path=/tasks status=413 allowed"]


async def _chunks(total: int, workflow: str = "x", size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A task's JSON body with `total` bytes of args, in chunks (no Content-Length)."""
    sent = 0
    yield b'{"workflow_name": "' + workflow.encode() + b'", "args": {"blob": "'
    while sent < total:
        chunk = min(size, total - sent)
        yield b"x" * chunk
        sent += chunk
    yield b'"}}'


async def test_streamed_body_over_1_mib_is_413(operator: httpx.AsyncClient) -> None:
    response = await operator.post(
        "/tasks", content=_chunks(2 * MAX_BODY_BYTES), headers={"Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers  # chunked: only the bytes tell
    assert response.status_code == 413
    assert response.json() == {"detail": TOO_LARGE}


async def test_body_within_1_mib_reaches_the_app(operator: httpx.AsyncClient, api_lab: Any) -> None:
    blob = "x" * (MAX_BODY_BYTES - 1024)  # over the 256 KiB a task's args may hold: the app says so
    body = {"workflow_name": api_lab.workflow("quick"), "args": {"blob": blob}}

    declared = await operator.post("/tasks", json=body)
    streamed = await operator.post(
        "/tasks",
        content=_chunks(MAX_BODY_BYTES - 1024, api_lab.workflow("quick")),
        headers={"Content-Type": "application/json"},
    )

    assert declared.status_code == streamed.status_code == 422
    assert "at most 262144 are accepted" in declared.text
    assert "at most 262144 are accepted" in streamed.text


async def test_large_body_from_an_address_outside_the_allowlist_is_403(
    serve_app: ServeApp, api_settings: Any, make_client: MakeClient
) -> None:
    url = await serve_app(
        settings=api_settings.model_copy(update={"authorized_ips": [ip_network("10.0.0.0/8")]})
    )

    response = await make_client(headers=bearer(token("admin")), base_url=url).post(
        "/tasks", content=b"x" * (2 * MAX_BODY_BYTES)
    )

    assert response.status_code == 403
    assert "is not allowed" in response.json()["detail"]
