"""Temporal's errors as ours, in one place: each an operator can act on has its own error (and so its
own HTTP status, api/errors.py) saying what to do; about a task, it names the task."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from temporalio.client import RPCTimeoutOrCancelledError, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from ...engine.errors import (
    CommandRefusedError,
    NamespaceNotFoundError,
    SchedulerUnavailableError,
    SearchAttributesMissingError,
    TaskExistsError,
    TaskOverError,
    TaskSchedulerError,
    TemporalInvalidArgumentError,
    TemporalOverloadedError,
    TemporalPermissionError,
    TemporalRequestError,
    UnknownTaskError,
)


@asynccontextmanager
async def temporal_errors(task_id: str | None = None) -> AsyncIterator[None]:
    """Map Temporal's errors to ours, in one place."""
    try:
        yield
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise CommandRefusedError(getattr(cause, "message", None) or str(cause or exc)) from exc
    except RPCTimeoutOrCancelledError as exc:
        raise SchedulerUnavailableError(
            "no worker answered in time: is a worker polling the workflow task queue running?"
        ) from exc
    except WorkflowAlreadyStartedError as exc:
        raise TaskExistsError(f"a task with id {task_id!r} exists already") from exc
    except RPCError as exc:
        raise _rpc_error(exc, task_id) from exc
    except WorkflowQueryFailedError as exc:
        raise SchedulerUnavailableError(
            f"the task's workflow could not answer ({exc}): does the worker running the workflows run "
            "this version of task_scheduler?"
        ) from exc
    except RuntimeError as exc:
        if "client connect" not in str(exc):
            raise
        # A lazily connected client (a lab's own) that cannot reach Temporal.
        raise SchedulerUnavailableError(f"cannot reach Temporal: {exc}") from exc


def _rpc_error(exc: RPCError, task_id: str | None) -> TaskSchedulerError:
    """About the task (over, unknown, exists already), or else what Temporal's status means for the lab
    (temporal_failure): never a bare 500."""
    if "already completed" in exc.message:
        return TaskOverError(f"task {task_id!r} is over: it takes no more commands")
    if exc.status is RPCStatusCode.NOT_FOUND and not namespace_missing(exc):
        return UnknownTaskError(f"no task {task_id!r}" if task_id else exc.message)
    if exc.status is RPCStatusCode.ALREADY_EXISTS:
        return TaskExistsError(f"a task with id {task_id!r} exists already")
    return temporal_failure(exc)


def namespace_missing(exc: RPCError) -> bool:
    """NOT_FOUND about the namespace itself ("Namespace x is not found."), not about a workflow."""
    return exc.status is RPCStatusCode.NOT_FOUND and exc.message.lower().startswith("namespace ")


def temporal_failure(exc: RPCError) -> TaskSchedulerError:
    make = _BY_STATUS.get(exc.status, _unexplained) if exc.status is not None else _unexplained
    return make(exc)


def _unavailable(exc: RPCError) -> TaskSchedulerError:
    return SchedulerUnavailableError(f"Temporal is unreachable: {exc.message}")


def _invalid_argument(exc: RPCError) -> TaskSchedulerError:
    if "search attribute" in exc.message.lower():
        return SearchAttributesMissingError(
            f"Temporal's namespace lacks the search attributes tasks need ({exc.message}): run "
            "`task-scheduler setup` against it (the API's TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE), then "
            "try again"
        )
    return TemporalInvalidArgumentError(f"Temporal refused the request as invalid: {exc.message}")


def _overloaded(exc: RPCError) -> TaskSchedulerError:
    return TemporalOverloadedError(
        f"Temporal is overloaded or rate-limits this namespace ({exc.message}): retry in a few seconds; "
        "if it lasts, raise the namespace's limits (frontend.namespaceRPS) or slow the callers down"
    )


def _not_permitted(exc: RPCError) -> TaskSchedulerError:
    status = exc.status.name if exc.status is not None else "PERMISSION_DENIED"
    return TemporalPermissionError(
        f"Temporal refused the API's request ({status}: {exc.message}): check the Temporal credentials "
        "the API runs with (TEMPORAL_API_KEY, or TEMPORAL_TLS_CLIENT_CERT_PATH and "
        "TEMPORAL_TLS_CLIENT_KEY_PATH) and what the namespace allows them"
    )


def _not_found(exc: RPCError) -> TaskSchedulerError:
    if not namespace_missing(exc):
        return _unexplained(exc)  # a workflow not found: the caller says which task it was
    return NamespaceNotFoundError(
        f"{exc.message.rstrip('.')}: check TEMPORAL_NAMESPACE, or create the namespace "
        "(`temporal operator namespace create NAME`) and run `task-scheduler setup`"
    )


def _unexplained(exc: RPCError) -> TaskSchedulerError:
    status = exc.status.name if exc.status is not None else "an unknown status"
    return TemporalRequestError(f"Temporal answered {status}: {exc.message}")


_BY_STATUS: dict[RPCStatusCode, Callable[[RPCError], TaskSchedulerError]] = {
    RPCStatusCode.UNAVAILABLE: _unavailable,
    RPCStatusCode.DEADLINE_EXCEEDED: _unavailable,
    RPCStatusCode.CANCELLED: _unavailable,
    RPCStatusCode.INVALID_ARGUMENT: _invalid_argument,
    RPCStatusCode.RESOURCE_EXHAUSTED: _overloaded,
    RPCStatusCode.PERMISSION_DENIED: _not_permitted,
    RPCStatusCode.UNAUTHENTICATED: _not_permitted,
    RPCStatusCode.NOT_FOUND: _not_found,
}
