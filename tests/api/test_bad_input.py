"""Bad input the API fuzz test led to, pinned: each is refused at once with 422 and a JSON answer,
never a 500, a dropped connection, or a 503 after seconds of retries."""

from __future__ import annotations

import time

import httpx
import pytest
from api_support import Tasks

from task_scheduler.engine.tasks import MAX_ARGS_BYTES, MAX_ARGS_DEPTH


def _nested(depth: int) -> str:
    """JSON of a dict `depth` levels deep."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.mark.parametrize("value", ["\x00", "plate\x00", "a\x1fb", "\x7f"])
async def test_list_filter_with_a_control_character_is_422_at_once(
    viewer: httpx.AsyncClient, value: str
) -> None:
    asked = time.monotonic()

    response = await viewer.get("/tasks", params={"workflow_name": value, "node": "a"})

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "the workflow_name filter may not contain quotes, backslashes or control characters"
    )
    assert time.monotonic() - asked < 2  # not Temporal's retries of a broken query


async def test_args_nested_too_deep_are_422(tasks: Tasks, operator: httpx.AsyncClient) -> None:
    body = f'{{"workflow_name": "{tasks.workflow("quick")}", "args": {_nested(MAX_ARGS_DEPTH + 1)}}}'

    response = await operator.post("/tasks", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    assert response.json()["detail"] == f"args are nested more than {MAX_ARGS_DEPTH} levels deep"


async def test_args_nested_as_deep_as_allowed_start_a_task(tasks: Tasks) -> None:
    args: dict[str, object] = {}
    inner = args
    for _ in range(MAX_ARGS_DEPTH - 1):
        inner["a"] = {}
        inner = inner["a"]  # type: ignore[assignment]

    started = await tasks.start("quick", args)

    await tasks.reaches(started["task_id"], "FINISHED")


async def test_args_too_large_are_422(tasks: Tasks, operator: httpx.AsyncClient) -> None:
    # Over the args' limit, within the body's 1 MiB (a larger body is a 413: test_body_limit.py).
    body = {"workflow_name": tasks.workflow("quick"), "args": {"notes": "x" * (512 * 1024)}}

    response = await operator.post("/tasks", json=body)

    assert response.status_code == 422
    assert f"at most {MAX_ARGS_BYTES} are accepted" in response.json()["detail"]


@pytest.mark.parametrize("depth", [300, 900])
async def test_invalid_body_nested_hundreds_of_levels_is_422_without_echo(
    operator: httpx.AsyncClient, depth: int
) -> None:
    body = f'{{"workflow_nam": {_nested(depth)}}}'  # no workflow_name: invalid

    response = await operator.post("/tasks", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"type": "missing", "loc": ["body", "workflow_name"], "msg": "Field required"}
    ]
