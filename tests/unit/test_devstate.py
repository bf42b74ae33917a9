"""How the CLI finds a `dev` stack from any folder: a running stack's folder (held by its lock) wins over
a nearby `.task-scheduler/` that holds nothing, a pointer left by a killed stack is ignored and removed,
and with nothing running the nearest stopped stack's token is used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from task_scheduler.devstate import (
    RUNNING,
    RunningStack,
    StackAlreadyRunning,
    announced,
    claimed,
    find,
    registry,
)


@pytest.fixture(autouse=True)
def user_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "user-state"))
    return tmp_path / "user-state"


def _stack(folder: Path) -> RunningStack:
    return RunningStack(pid=4242, state_dir=str(folder), api_url="http://127.0.0.1:8123", started_at=1.0)


def test_a_running_stack_is_found_past_a_nearby_folder_that_holds_nothing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / ".task-scheduler").mkdir(parents=True)  # e.g. made by a driver writing its own file there
    state = tmp_path / "lab" / ".task-scheduler"
    with claimed(state), announced(_stack(state)):
        found = find(work)

    assert found.state_dir == state
    assert found.stack is not None and found.stack.api_url == "http://127.0.0.1:8123"


def test_a_second_claim_of_a_folder_says_who_holds_it(tmp_path: Path) -> None:
    state = tmp_path / ".task-scheduler"
    with claimed(state), announced(_stack(state)), pytest.raises(StackAlreadyRunning) as refused:
        claimed(state).__enter__()  # a second process's claim (flock: another open file is another owner)

    assert "pid 4242, lab page http://127.0.0.1:8123/lab" in str(refused.value)


def test_what_a_killed_stack_left_is_not_taken_for_a_running_one(tmp_path: Path) -> None:
    state = tmp_path / "lab" / ".task-scheduler"
    state.mkdir(parents=True)
    left = json.dumps({"pid": 1, "state_dir": str(state), "api_url": "http://127.0.0.1:8123"})
    (state / RUNNING).write_text(left)  # pid 1 lives, but nobody holds the folder
    registry().mkdir(parents=True)
    pointer = registry() / "1.json"
    pointer.write_text(left)

    found = find(tmp_path / "elsewhere")

    assert found.stack is None and found.state_dir is None
    assert not pointer.exists()
    assert "no running stack listed in" in found.where_looked()


def test_with_nothing_running_the_nearest_stopped_stack_s_token_is_used(tmp_path: Path) -> None:
    state = tmp_path / ".task-scheduler"
    state.mkdir()
    (state / "token").write_text("t0ken\n")
    (tmp_path / "sub" / ".task-scheduler").mkdir(parents=True)  # nearer, but holds no token

    found = find(tmp_path / "sub")

    assert found.state_dir == state and found.stack is None
    assert found.file("token") == state / "token"
