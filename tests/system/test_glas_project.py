"""A GLAS lab project runs unchanged, and is durable: tests/glas_project (nodes overriding the seed's
hooks, a node whose continue redoes its step (SELF), an orchestrator with loaders, callbacks and its own
Task class, a scheduler with routes of its own, run.py and exec.sh as the seed's README writes them),
with this package at src/task_scheduler, run with `./exec.sh PORT` and driven through the seed's routes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dev_stack import wait_until
from glas_project import GlasProject


@pytest.fixture
def project(tmp_path: Path) -> Iterator[GlasProject]:
    lab = GlasProject.copy(tmp_path / "my-project")
    yield lab
    lab.cleanup()


def _add(http: httpx.Client, workflow: str, args: dict[str, Any] | None = None) -> str:
    response = http.post("/task/", json={"workflow_name": workflow, "args": args})
    assert response.status_code == 200, response.text
    return str(response.json()["uuid"])


def _state_id(http: httpx.Client, task_id: str) -> int:
    response = http.get(f"/task/{task_id}")
    return int(response.json()["task"]["task_state_id"]) if response.status_code == 200 else 0


def _reaches(http: httpx.Client, task_id: str, state_id: int, timeout_s: float = 30) -> None:
    wait_until(lambda: _state_id(http, task_id) == state_id, f"task {task_id} at {state_id}", timeout_s)


def _mid_step(project: GlasProject) -> bool:
    """Two steps have ended and a driver is in the middle of its run (it started under 0.5 s ago)."""
    journal = project.journal()
    ended = {(e["task_id"], e["node"]) for e in journal if e["hook"] == "end"}
    running = [e for e in journal if e["hook"] == "start" and (e["task_id"], e["node"]) not in ended]
    return len(ended) >= 2 and any(time.time() - e["at"] < 0.5 for e in running)


def _runs(project: GlasProject, task_id: str) -> list[str]:
    """The nodes whose driver started for the task, in order."""
    return [e["node"] for e in project.journal() if e["hook"] == "start" and e.get("task_id") == task_id]


def test_glas_project_runs_unchanged_with_its_hooks_routes_and_continue_semantics(
    project: GlasProject,
) -> None:
    project.start()
    with project.client() as http:
        hello = httpx.get(f"{project.url}/my-prefix/hello", timeout=10)
        names = http.get("/orchestrator/nodes")
        plain = _add(http, "prepare", {"plate": "P-1"})
        overdose = _add(http, "prepare", {"plate": "P-2", "volume_ul": 5000})
        _reaches(http, plain, 4)
        _reaches(http, overdose, 5)
        # The dispenser's failure, decided as the seed's operators decide it: restart, then continue
        # (NEXT, the node's default: on to the reader).
        assert http.patch("/node/restart/dispenser").status_code == 200
        assert http.patch(f"/task/continue/{overdose}").status_code == 200
        _reaches(http, overdose, 4)
        (project.folder / "reader-jammed").touch()
        jammed = _add(http, "read")
        _reaches(http, jammed, 5)
        (project.folder / "reader-jammed").unlink()
        assert http.patch("/node/restart/reader").status_code == 200
        assert http.patch(f"/task/continue/{jammed}").status_code == 200  # SELF: the read again
        _reaches(http, jammed, 4)
    assert project.interrupt() == 0

    assert (hello.status_code, hello.json()) == (200, {"message": "Hello World!"})
    assert names.json() == ["Plate hotel", "Dispenser", "Plate reader"]
    journal = project.journal()
    hooks = [
        (e["hook"], e["node"], e["src"], e["dst"], e["wf_name"], e["args"])
        for e in journal
        if e.get("task_id") == plain and e["hook"] in ("pre", "post")
    ]
    args = {"plate": "P-1"}
    assert hooks == [
        ("pre", "hotel", None, "dispenser", "prepare", args),
        ("post", "hotel", None, "dispenser", "prepare", args),
        ("pre", "dispenser", "hotel", "reader", "prepare", args),
        ("post", "dispenser", "hotel", "reader", "prepare", args),
        ("pre", "reader", "dispenser", "hotel", "prepare", args),
        ("post", "reader", "dispenser", "hotel", "prepare", args),
        ("pre", "hotel", "reader", None, "prepare", args),
        ("post", "hotel", "reader", None, "prepare", args),
    ]
    task_hooks = [
        (e["hook"], e["node"]) for e in journal if e.get("task_id") == plain and e["hook"].startswith("task-")
    ]
    assert task_hooks == [
        (h, n) for n in ("hotel", "dispenser", "reader", "hotel") for h in ("task-pre", "task-post")
    ]
    assert _runs(project, overdose) == ["hotel", "dispenser", "reader", "hotel"]  # the dose skipped
    assert not any(
        e["hook"] == "post" and e["node"] == "dispenser" and e["task_id"] == overdose for e in journal
    )
    assert _runs(project, jammed) == ["hotel", "reader", "reader"]
    assert Counter(e["node"] for e in journal if e["hook"] == "restart") == {"dispenser": 1, "reader": 1}
    callbacks = [e["hook"] for e in journal if e["hook"].startswith("orchestrator-")]
    assert callbacks == ["orchestrator-start", "orchestrator-stop"]  # the stop: at Ctrl-C, as the seed's
    log = project.output()
    assert (
        "DATABASE_HOST, DATABASE_PORT, DATABASE_USER, DATABASE_PASSWORD, DATABASE_NAME, SECRET: not needed"
        in log
    )
    assert (project.folder / "scheduler.log").exists()  # -l, as the seed's


def test_glas_project_killed_mid_run_finishes_every_task_when_started_again(project: GlasProject) -> None:
    project.start()
    with project.client() as http:
        tasks = [_add(http, "long", {"step_s": 1.5}) for _ in range(4)]
        wait_until(lambda: _mid_step(project), "a step in the middle of its run, after two ended", 30)
    project.kill()
    wait_until(project.servers_gone, "the Temporal server to stop with its parent", 30)

    project.start()
    continued: Counter[tuple[str, str]] = Counter()
    with project.client() as http:

        def all_finished() -> bool:
            for task_id in tasks:
                if _state_id(http, task_id) == 5:  # a step cut off by the kill: the operator decides
                    node = http.get(f"/tasks/{task_id}").json()["current_node"]
                    assert http.patch(f"/task/continue/{task_id}").status_code == 200
                    continued[(task_id, node)] += 1
            return all(_state_id(http, task_id) == 4 for task_id in tasks)

        wait_until(all_finished, "every task to finish", 90, interval_s=0.5)
    project.interrupt()

    journal = project.journal()
    for task_id in tasks:
        runs = Counter(_runs(project, task_id))
        for node in ("hotel", "dispenser", "reader"):
            assert runs[node] <= 1 + continued[(task_id, node)], (task_id, node, runs, continued)
        # The project's own Task class ran its hook before every run, those after the restart too (one
        # more if the kill fell between the hook and the driver).
        hooked = Counter(e["node"] for e in journal if e["hook"] == "task-pre" and e["task_id"] == task_id)
        assert all(hooked[node] >= count for node, count in runs.items()), (task_id, hooked, runs)
    assert sum(continued.values()) >= 1  # the kill did cut steps off
