"""`GET /me`: who a token names, its role and when it expires, for the lab page (and any client) to
know what to offer: a viewer's page shows no command buttons."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from ..deps import Viewer, bearer
from ..responses import GUARDED

router = APIRouter(tags=["tokens"])


class MePublic(BaseModel):
    name: str
    role: str = Field(description="viewer, operator or admin")
    expires_at: datetime = Field(
        description="when the token stops working (its own expiry, or its role's lifetime)"
    )


@router.get("/me", responses=GUARDED)
async def me(
    request: Request,
    who: Viewer,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> MePublic:
    """The caller: the name and role its token grants, and when that token expires."""
    assert credentials is not None  # Viewer has read it
    claims = jwt.decode(credentials.credentials, options={"verify_signature": False})  # checked by Viewer
    settings = request.app.state.settings
    expiry = min(float(claims["exp"]), float(claims["iat"]) + settings.token_lifetime_s(who.role.name))
    return MePublic(name=who.name, role=who.role.name, expires_at=datetime.fromtimestamp(expiry, UTC))
