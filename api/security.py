"""Bearer tokens (JWT, HS256) with roles viewer < operator < admin, and the IP allowlist."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from enum import IntEnum
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

import jwt
from pydantic import BaseModel
from starlette.requests import Request

from ..engine.errors import AuthenticationError, TokenExpiredError, TokenRevokedError
from ..settings import DAY_S, Settings

ALGORITHM = "HS256"
# Any token that does not decode, or whose signature or claims do not hold: the caller learns no more
# (the decoder's own words only help whoever forges one); the API's debug log keeps them.
NOT_OURS = "invalid token: not a token this lab issued (make one with `task-scheduler token create NAME`)"

log = logging.getLogger(__name__)


class Role(IntEnum):
    viewer = 1
    operator = 2
    admin = 3


class Identity(BaseModel):
    name: str
    role: Role
    expires_at: datetime | None = None  # the token's own expiry, or its role's lifetime if sooner


def create_token(secret: str, name: str, role: Role, ttl_s: float) -> str:
    now = int(time.time())
    claims = {"sub": name, "role": role.name, "iat": now, "exp": now + int(ttl_s)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_token(settings: Settings, token: str) -> Identity:
    """The caller a token names, if its signature holds, it has not expired (by its own `exp`, or by its
    role's lifetime counted from `iat`) and it was not issued before TASK_SCHEDULER_TOKENS_VALID_AFTER."""
    secret = settings.secret.get_secret_value() if settings.secret else ""
    claims = _claims(secret, token)
    _check_not_revoked(claims["iat"], settings.tokens_valid_after)
    try:
        identity = Identity(name=str(claims["sub"]), role=Role[str(claims.get("role", ""))])
    except KeyError as exc:
        raise AuthenticationError("the token names no known role (viewer, operator, admin)") from exc
    _check_lifetime(claims["iat"], identity.role, settings)
    expiry = min(float(claims["exp"]), float(claims["iat"]) + settings.token_lifetime_s(identity.role.name))
    return identity.model_copy(update={"expires_at": datetime.fromtimestamp(expiry, UTC)})


def _claims(secret: str, token: str) -> dict[str, Any]:
    try:
        return jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpiredError("the token has expired: ask an admin for a new one") from exc
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        log.debug("token refused: %s: %s", type(exc).__name__, exc)
        raise AuthenticationError(NOT_OURS) from None


def _check_not_revoked(issued_at: float, valid_after: datetime | None) -> None:
    if valid_after is not None and issued_at < valid_after.timestamp():
        when = valid_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise TokenRevokedError(
            f"token revoked: issued before {when} (TASK_SCHEDULER_TOKENS_VALID_AFTER); ask an admin for "
            "a new one"
        )


def _check_lifetime(issued_at: float, role: Role, settings: Settings) -> None:
    lifetime_s = settings.token_lifetime_s(role.name)
    if time.time() > issued_at + lifetime_s:
        raise TokenExpiredError(
            f"the token has expired: {role.name} tokens live at most {_duration(lifetime_s)} "
            f"(TASK_SCHEDULER_TOKEN_TTL_S_{role.name.upper()}); ask an admin for a new one"
        )


def _duration(seconds: float) -> str:
    return f"{seconds / DAY_S:g} day(s)" if seconds >= DAY_S else f"{seconds:g} s"


def address_allowed(address: str | None, networks: list[IPv4Network | IPv6Network]) -> bool:
    if address is None:
        return False
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks if ip.version == network.version)


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ip_address(address).is_loopback
    except ValueError:
        return False


def is_local_caller(request: Request) -> bool:
    """Whether the caller is on the API's own machine. Behind a trusted proxy uvicorn has already put the
    forwarded address in `request.client`. A loopback address with an X-Forwarded-For is a caller only if
    that address is itself a trusted proxy (every hop was trusted: a local caller through a local proxy);
    otherwise a local forwarder nobody declared passed the request on, for a caller who may be anywhere.
    A `Forwarded` header (RFC 7239, which uvicorn does not read) is never a local caller."""
    address = request.client.host if request.client else None
    if not is_loopback(address) or "forwarded" in request.headers:
        return False
    if "x-forwarded-for" not in request.headers:
        return True
    return address_allowed(address, request.app.state.settings.trusted_proxies)
