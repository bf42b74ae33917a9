"""Bearer tokens (JWT, HS256) with roles viewer < operator < admin, and the IP allowlist."""

from __future__ import annotations

import time
from enum import IntEnum
from ipaddress import IPv4Network, IPv6Network, ip_address

import jwt
from pydantic import BaseModel

from ..engine.errors import AuthenticationError

ALGORITHM = "HS256"


class Role(IntEnum):
    viewer = 1
    operator = 2
    admin = 3


class Identity(BaseModel):
    name: str
    role: Role


def create_token(secret: str, name: str, role: Role, ttl_s: float) -> str:
    now = int(time.time())
    claims = {"sub": name, "role": role.name, "iat": now, "exp": now + int(ttl_s)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_token(secret: str, token: str) -> Identity:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("the token has expired: ask an admin for a new one") from exc
    except jwt.PyJWTError as exc:
        raise AuthenticationError(
            f"invalid token ({exc}): use one made by `task-scheduler token create`"
        ) from exc
    try:
        return Identity(name=str(claims["sub"]), role=Role[str(claims.get("role", ""))])
    except KeyError as exc:
        raise AuthenticationError("the token names no known role (viewer, operator, admin)") from exc


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
