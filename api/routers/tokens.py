"""Tokens: the seed's `/token/{identifier}` (localhost only) and tokens of any role for admins."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...engine.errors import PermissionDeniedError
from ..deps import Admin
from ..responses import GUARDED, errors
from ..schemas import TokenCreate, TokenPublic
from ..security import Role, create_token, is_local_caller

router = APIRouter(tags=["tokens"])


def _issue(request: Request, name: str, role: Role) -> TokenPublic:
    settings = request.app.state.settings
    lifetime_s = settings.token_lifetime_s(role.name)
    token = create_token(settings.secret.get_secret_value(), name, role, lifetime_s)
    return TokenPublic(token=token, name=name, role=role.name, expires_in_s=lifetime_s)


@router.get("/token/{identifier}", responses=errors(403))
async def token_for_localhost(identifier: str, request: Request) -> TokenPublic:
    """A token for a caller on this machine (the seed's route), of TASK_SCHEDULER_LOCAL_TOKEN_ROLE's role."""
    if "origin" in request.headers:
        # A web page in a browser on this machine sends an Origin: where an API allows any origin (a
        # GLAS project's, as the seed did), it could read the token and act with it.
        raise PermissionDeniedError(
            "tokens are not given to web pages (the request has an Origin header); make one with "
            "`task-scheduler token create NAME --role operator`"
        )
    if not is_local_caller(request):
        raise PermissionDeniedError(
            "tokens are given only to callers on the API's own machine (through a reverse proxy, only if "
            "TASK_SCHEDULER_TRUSTED_PROXIES names it and it forwards the caller's address)"
        )
    return _issue(request, identifier, Role[request.app.state.settings.local_token_role])


@router.post("/tokens", responses={**GUARDED, **errors(400, 422)})
async def create_token_route(body: TokenCreate, request: Request, who: Admin) -> TokenPublic:
    """Make a token of any role (admin only)."""
    return _issue(request, body.name, Role[body.role])
