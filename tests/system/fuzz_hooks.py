"""Schemathesis hooks of the fuzz test (loaded by `st` through SCHEMATHESIS_HOOKS): a valid `timeout_s`
of `GET /tasks/{id}/wait` is capped, so waiting on a paused task does not hold the run for minutes."""

from __future__ import annotations

from typing import Any

import schemathesis

WAIT_CAP_S = 0.5


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    if not case.path.endswith("/wait") or "timeout_s" not in (case.query or {}):
        return
    try:
        timeout_s = float(case.query["timeout_s"])
    except (TypeError, ValueError):
        return  # invalid on purpose: the API must refuse it (422)
    if timeout_s > WAIT_CAP_S:
        case.query["timeout_s"] = WAIT_CAP_S
