"""The error responses each route documents in OpenAPI: every status it can answer, with its body, so a
client (and the schema-driven fuzz test) knows them all. Bodies are `{"detail": ...}` (see errors.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorPublic(BaseModel):
    detail: str = Field(description="what went wrong, and how to fix it where that can be said")


class ValidationProblem(BaseModel):
    """One problem FastAPI found in the request (its validation error)."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class ConfigProblemsPublic(BaseModel):
    message: str
    problems: list[str] = Field(description="every problem, with its file and JSON path")


class InvalidInputPublic(BaseModel):
    detail: str | list[ValidationProblem] | ConfigProblemsPublic = Field(
        description="the request's problems (FastAPI's list), our message, or the configuration's problems"
    )


WHY: dict[int, tuple[str, type[BaseModel]]] = {
    400: ("the body could not be read (not UTF-8 JSON)", ErrorPublic),
    401: ("no token, or an invalid or expired one", ErrorPublic),
    403: ("the token's role is too low, or the caller's address is not allowed", ErrorPublic),
    404: ("no such task, workflow or node", ErrorPublic),
    409: ("the command is impossible in the current state, or the task id exists already", ErrorPublic),
    422: ("invalid input", InvalidInputPublic),
    503: ("Temporal is unreachable, or no worker answered", ErrorPublic),
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route (or router) that may answer `statuses`."""
    return {status: {"model": WHY[status][1], "description": WHY[status][0]} for status in statuses}


# Every route that needs a token: refused without one (401) or with too low a role / address (403).
GUARDED = errors(401, 403)
