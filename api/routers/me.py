"""`GET /me`: who a token names, its role and when it expires, for the lab page (and any client) to
know what to offer: a viewer's page shows no command buttons."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ..deps import Viewer
from ..responses import GUARDED

router = APIRouter(tags=["tokens"])


class MePublic(BaseModel):
    name: str
    role: str = Field(description="viewer, operator or admin")
    expires_at: datetime = Field(
        description="when the token stops working (its own expiry, or its role's lifetime)"
    )


@router.get("/me", responses=GUARDED)
async def me(who: Viewer) -> MePublic:
    """The caller: the name and role its token grants, and when that token expires."""
    assert who.expires_at is not None  # read_token sets it
    return MePublic(name=who.name, role=who.role.name, expires_at=who.expires_at)
