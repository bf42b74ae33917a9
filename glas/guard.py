"""The guard of the seed's routes: our bearer token, a viewer's to read (GET) and an operator's to act,
refused in the seed's words (a bare JSON string for a 401), on a router whose every route has it, a GLAS
project's own routes too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials

from ..api.deps import bearer, require
from ..api.security import Identity, Role
from ..engine.errors import AuthenticationError, PermissionDeniedError
from . import runtime

READS = ("GET", "HEAD")
TEXT = {"text/plain": {"schema": {"type": "string"}}}
NULL = {"application/json": {"schema": {"type": "null"}}}


def text_answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": TEXT}


# A refused token: the seed's bare JSON string; a refused address: our `{"detail": ...}`.
REFUSED: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "no token, or an invalid one",
        "content": {"application/json": {"schema": {"type": "string"}}},
    },
    403: {
        "description": "the token's role is too low, or the address is not allowed",
        "content": {"application/json": {"schema": {}}},
    },
}


class SeedRoute(APIRoute):
    """A route of the seed's API: a refused token answers as the seed's did (a bare JSON string, not
    `{"detail": ...}`); every other error as our API's (api/errors.py)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except AuthenticationError as exc:
                return JSONResponse(exc.message, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            except PermissionDeniedError as exc:
                return JSONResponse(exc.message, status_code=403)

        return route


class SeedRouter(APIRouter):
    """A router of the seed's API. Every route on it, a GLAS project's own too, takes our bearer token:
    a viewer's to read (GET), an operator's to act (as the seed let any token do anything)."""

    def __init__(self, guard: Callable[[Role], Any], **options: Any) -> None:
        super().__init__(route_class=SeedRoute, responses=REFUSED, **options)
        self._guard = guard

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        """`role=Role.operator` for a GET that acts (the seed's collection continues a task by GET)."""
        role = options.pop("role", None) or role_of(options.get("methods"))
        guard = Security(self._guard(role), scopes=[role.name])
        options["dependencies"] = [*(options.get("dependencies") or []), guard]
        super().add_api_route(path, endpoint, **options)


def seed_guard(role: Role, seed: runtime.SeedRuntime) -> Callable[..., Coroutine[Any, Any, Identity]]:
    """Our token check for `role`, refusing in the seed's words; it also binds the seed's objects to
    the API's loop and names the caller to the operations the route leads to."""
    check = require(role)

    async def guard(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Identity:
        seed.bind(asyncio.get_running_loop())
        try:
            identity = await check(request, credentials)
        except AuthenticationError as exc:
            if credentials is None:
                raise AuthenticationError("Not authenticated") from exc
            raise AuthenticationError(f"Could not validate credentials: {exc.message}") from exc
        runtime.caller.set(identity.name)
        return identity

    return guard


def role_of(methods: Any) -> Role:
    """A viewer may read (GET, HEAD), an operator act (any other method)."""
    return Role.viewer if set(methods or ["GET"]) <= set(READS) else Role.operator
