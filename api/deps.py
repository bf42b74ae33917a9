"""FastAPI dependencies: the Temporal client (connected lazily), the services, and the caller's role."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from ..engine.errors import AuthenticationError, PermissionDeniedError, SchedulerUnavailableError
from ..settings import Settings, connect
from .security import Identity, Role, read_token
from .services.nodes import NodeService
from .services.tasks import TaskService

CONNECT_TIMEOUT_S = 5.0
bearer = HTTPBearer(auto_error=False, description="a token from `task-scheduler token create`")


def settings_of(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def temporal_client(request: Request) -> Client:
    """Connect on first use, so the API starts (and answers /health) while Temporal is down."""
    return await connected_client(request.app)


async def connected_client(app: FastAPI) -> Client:
    """The app's Temporal client, connected on first use."""
    state = app.state
    if state.client is None:
        async with state.client_lock:
            if state.client is None:
                try:
                    state.client = await asyncio.wait_for(connect(state.settings), CONNECT_TIMEOUT_S)
                except (TimeoutError, RuntimeError, OSError) as exc:
                    raise SchedulerUnavailableError(
                        f"cannot reach Temporal at {state.settings.temporal_address}: {exc or 'timed out'}"
                    ) from exc
    return state.client  # type: ignore[no-any-return]


async def task_service(request: Request, client: Annotated[Client, Depends(temporal_client)]) -> TaskService:
    return TaskService(client, request.app.state.settings, request.app.state.lab)


async def node_service(
    request: Request,
    client: Annotated[Client, Depends(temporal_client)],
    tasks: Annotated[TaskService, Depends(task_service)],
) -> NodeService:
    return NodeService(client, request.app.state.settings, request.app.state.lab, tasks)


def require(role: Role) -> Callable[..., Awaitable[Identity]]:
    """A dependency that admits a caller whose token grants at least `role`."""

    async def check(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Identity:
        if credentials is None:
            raise AuthenticationError()
        identity = read_token(request.app.state.settings, credentials.credentials)
        request.state.identity = identity
        if identity.role < role:
            raise PermissionDeniedError(
                f"this needs the {role.name} role; your token has {identity.role.name}"
            )
        return identity

    return check


# Security, not Depends: the role a route needs is then named in its OpenAPI security requirement
# (`{"HTTPBearer": ["operator"]}`, OpenAPI 3.1's role list), for clients and for the security tests.
Viewer = Annotated[Identity, Security(require(Role.viewer), scopes=[Role.viewer.name])]
Operator = Annotated[Identity, Security(require(Role.operator), scopes=[Role.operator.name])]
Admin = Annotated[Identity, Security(require(Role.admin), scopes=[Role.admin.name])]
Tasks = Annotated[TaskService, Depends(task_service)]
Nodes = Annotated[NodeService, Depends(node_service)]
