"""Our errors to HTTP statuses, in exactly one place. Every error is JSON `{"detail": ...}`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..engine.errors import (
    AuthenticationError,
    CommandRefusedError,
    ConfigError,
    InvalidRequestError,
    InvalidTransitionError,
    PermissionDeniedError,
    RequestTooLargeError,
    SchedulerUnavailableError,
    TaskExistsError,
    TaskSchedulerError,
    TemporalOverloadedError,
    TemporalRequestError,
    UnknownNodeError,
    UnknownStepError,
    UnknownTaskError,
    UnknownWorkflowError,
)

# The first kind that matches: a subclass comes before its base.
STATUS_OF: list[tuple[type[TaskSchedulerError], int]] = [
    (UnknownTaskError, 404),
    (UnknownWorkflowError, 404),
    (UnknownNodeError, 404),
    (UnknownStepError, 404),
    (TaskExistsError, 409),
    (CommandRefusedError, 409),
    (InvalidTransitionError, 409),
    (ConfigError, 422),
    (RequestTooLargeError, 413),
    (InvalidRequestError, 422),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (SchedulerUnavailableError, 503),  # Temporal unreachable, overloaded, or refusing the API's credentials
    (TemporalRequestError, 502),  # Temporal answered with an error the API cannot explain
]
# Seconds a client should wait before it retries (the Retry-After header).
RETRY_AFTER_S: list[tuple[type[TaskSchedulerError], int]] = [(TemporalOverloadedError, 5)]


def status_of(error: TaskSchedulerError) -> int:
    return next((status for kind, status in STATUS_OF if isinstance(error, kind)), 500)


def headers_of(error: TaskSchedulerError, status: int) -> dict[str, str] | None:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    retry_after = next((seconds for kind, seconds in RETRY_AFTER_S if isinstance(error, kind)), None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return headers or None


async def _handle(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, TaskSchedulerError)
    status = status_of(error)
    detail: object = error.message
    if isinstance(error, ConfigError):
        detail = {"message": error.message.splitlines()[0], "problems": [str(p) for p in error.problems]}
    return JSONResponse({"detail": detail}, status_code=status, headers=headers_of(error, status))


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422, without echoing the input: a body nested a few hundred levels deep cannot be
    serialized back, and the answer would be a 500 (or a dropped connection) instead of a 422."""
    assert isinstance(error, RequestValidationError)
    problems = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in error.errors()]
    return JSONResponse({"detail": problems}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TaskSchedulerError, _handle)
    app.add_exception_handler(RequestValidationError, _invalid_request)
