"""Refuse a request body over the limit with 413 before anything reads it as JSON: by its Content-Length
at once, and by the bytes it streams (a chunked body declares no length) before the app is called."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..engine.errors import RequestTooLargeError
from .errors import status_of

MAX_BODY_BYTES = 1024 * 1024


class BodyLimit:
    """ASGI middleware: at most `max_bytes` of request body. A body within the limit is read here (it is
    at most `max_bytes`) and handed on to the app as it came."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        messages = await self._read_body(receive)
        if messages is None:
            await self._refuse(scope, receive, send)
            return
        await self.app(scope, _replay(messages, receive), send)

    async def _read_body(self, receive: Receive) -> list[Message] | None:
        """The body's messages, or None once it streams more than the limit."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages  # the client went away: the app hears it as it would have
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return None
            if not message.get("more_body", False):
                return messages

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = RequestTooLargeError(
            f"the request body is over {self.max_bytes} bytes ({self.max_bytes / 1024 / 1024:g} MiB): send "
            "less (a task's args are at most 256 KiB of JSON)"
        )
        # The rest of the body is not read: the connection is closed after the answer.
        response = JSONResponse(
            {"detail": error.message}, status_code=status_of(error), headers={"Connection": "close"}
        )
        await response(scope, receive, send)


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the server refuses a malformed length itself
    return 0


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
