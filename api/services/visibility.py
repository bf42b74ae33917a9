"""Queries of Temporal's visibility store (the task listings, counts, the timeline's window): the lab's
tasks, and the values a caller's filter may hold."""

from __future__ import annotations

from ...engine.contracts import TASK_WORKFLOW_TYPE
from ...engine.errors import InvalidRequestError


def filter_value(name: str, value: str) -> str:
    # A control character (NUL above all) breaks the visibility store's SQL: Temporal answers
    # "unavailable" and its client retries for seconds before the caller hears anything.
    if '"' in value or "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidRequestError(
            f"the {name} filter may not contain quotes, backslashes or control characters"
        )
    return f'"{value}"'


def lab_tasks(task_queue: str) -> str:
    """The lab's tasks: the TaskWorkflows of its workflow task queue. Other labs or tests may share the
    Temporal namespace, and a lab-wide pause must not reach their tasks."""
    return f'WorkflowType="{TASK_WORKFLOW_TYPE}" AND TaskQueue={filter_value("task_queue", task_queue)}'
