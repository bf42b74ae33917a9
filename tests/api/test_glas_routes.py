"""The seed's HTTP API beside ours (glas/routes.py), as its clients use it: the status codes and bodies
they rely on, each effect in the lab, the seed's bugs fixed as README says, and its tasks the same
durable tasks our API shows."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from api_support import JOURNAL, bearer, token, wait_for
from glas_support import SeedApi, seed_api
from temporalio.client import Client

from task_scheduler.settings import Settings


@pytest.fixture
async def seed(tmp_path: Path, api_settings: Settings, temporal_client: Client) -> AsyncIterator[SeedApi]:
    async with seed_api(tmp_path / "lab", api_settings, temporal_client) as api:
        yield api


async def test_a_task_started_by_the_seeds_route_runs_and_is_a_task_like_any_other(seed: SeedApi) -> None:
    task = await seed.add("pair", {"plate": "P-1"})

    assert uuid.UUID(task["uuid"]).version == 4
    assert task["state"] in ("PENDING", "ACTIVE") and task["args"] == {"plate": "P-1"}
    assert [step["id"] for step in task["workflow"]["steps"]] == [seed.node("a"), seed.node("b")]
    assert task["workflow"]["source"]["id"] == seed.node("a")
    row = await seed.reaches(task["uuid"], 4)
    body = (await seed.http.get(f"/task/{task['uuid']}")).json()
    ours = (await seed.http.get(f"/tasks/{task['uuid']}")).json()

    assert row["workflow_id"] == body["workflow"]["id"] and row["active_step"] is None
    assert body["workflow"] == {
        "id": row["workflow_id"],
        "name": seed.workflow("pair"),
        "source_node_id": seed.node("a"),
        "destination_node_id": seed.node("b"),
    }
    assert row["created_at"] <= row["updated_at"] and "+" not in row["created_at"]  # naive, as MySQL's
    assert (ours["state"], ours["args"]) == ("FINISHED", {"plate": "P-1"})
    assert (await seed.http.get("/task/running")).json() == []


async def test_a_failed_step_then_restart_and_continue_goes_to_the_next_step(seed: SeedApi) -> None:
    task = await seed.add("failing")
    await seed.reaches(task["uuid"], 5)
    running = (await seed.http.get("/task/running")).json()

    assert [(t["uuid"], t["state"], t["current_step"]) for t in running] == [(task["uuid"], "ERROR", 0)]
    assert running[0]["workflow"]["steps"][0]["status"] == "ERROR"  # its node, as the seed showed it
    restarted = await seed.http.patch(f"/node/restart/{seed.node('f')}")
    continued = await seed.http.patch(f"/task/continue/{task['uuid']}")
    assert (restarted.status_code, restarted.json()) == (200, None)
    assert (continued.status_code, continued.json()) == (200, None)
    await seed.reaches(task["uuid"], 4)
    ours = (await seed.http.get(f"/tasks/{task['uuid']}")).json()
    steps = ours["steps"]
    assert [s["outcome"] for s in steps] == ["SKIPPED", "SUCCEEDED"]  # NEXT, the seed's default
    decision = ours["decisions"][-1]
    assert (decision["command"], decision["mode"], decision["by"]) == ("continue", "next", "lab-script")
    assert steps[0]["message"] and "failed on purpose" in steps[0]["message"]


async def test_pause_reads_paused_at_once_and_continue_resumes(seed: SeedApi) -> None:
    hold = lab_hold()
    task = await seed.add("held", {"hold": hold})
    await wait_for(lambda: seed.row(task["uuid"]), "the task's row")
    await wait_for(lambda: _active_on(seed, task["uuid"], seed.node("h")), "the first step running")

    paused = await seed.http.patch(f"/task/pause/{task['uuid']}")
    assert (paused.status_code, paused.json()) == (200, None)
    assert (await seed.row(task["uuid"]))["task_state_id"] == 3  # at once, as the seed said it
    assert (await seed.http.patch(f"/task/pause/{task['uuid']}")).status_code == 200  # again: no harm
    release(hold)
    await wait_for(lambda: _state(seed, task["uuid"], "PAUSED"), "the pause to take effect")
    assert (await seed.http.patch(f"/task/continue/{task['uuid']}")).status_code == 200
    await seed.reaches(task["uuid"], 4)


async def test_unknown_ids_bad_bodies_and_tokens_answer_as_the_seeds_clients_expect(seed: SeedApi) -> None:
    http = seed.http
    body = {"workflow_name": "no-such-workflow", "args": {"x": 1}}

    cases = {
        "pause": await http.patch("/task/pause/no-such-task"),
        "continue": await http.patch("/task/continue/no-such-task"),
        "restart": await http.patch("/node/restart/no-such-node"),
    }
    unknown_task = await http.get(f"/task/{uuid.uuid4()}")
    unknown_workflow = await http.post("/task/", json=body)
    no_name = await http.post("/task/", json={"args": None})
    anonymous = await http.get("/task/running", headers={"Authorization": ""})
    forged = await http.get("/task/running", headers=bearer("not-a-token"))
    viewer = await http.patch("/task/pause/x", headers=bearer(token("viewer")))

    assert {k: (r.status_code, r.text) for k, r in cases.items()} == {
        "pause": (404, "Task does not exist"),
        "continue": (404, "Task does not exist"),
        "restart": (404, "Node does not exist"),
    }
    assert cases["pause"].headers["content-type"].startswith("text/plain")
    assert (unknown_task.status_code, unknown_task.content) == (204, b"")  # the seed's, without its bug
    assert (unknown_workflow.status_code, unknown_workflow.json()) == (404, body)
    assert no_name.status_code == 422 and no_name.json()["detail"][0]["loc"] == ["body", "workflow_name"]
    assert (anonymous.status_code, anonymous.json()) == (401, "Not authenticated")
    assert forged.status_code == 401 and forged.json().startswith("Could not validate credentials: ")
    assert (viewer.status_code, viewer.json()) == (403, "this needs the operator role; your token has viewer")


async def test_orchestrator_stop_refuses_new_tasks_pauses_running_ones_and_start_resumes_them(
    seed: SeedApi,
) -> None:
    http = seed.http
    hold = lab_hold()
    task = await seed.add("held", {"hold": hold})
    await wait_for(lambda: _active_on(seed, task["uuid"], seed.node("h")), "the first step running")

    stopped = await http.delete("/orchestrator/stop")
    assert (stopped.status_code, stopped.content) == (204, b"")
    assert (await http.delete("/orchestrator/stop")).status_code == 409
    status = await http.get("/orchestrator/status")
    refused = await http.post("/task/", json={"workflow_name": seed.workflow("pair")})
    ours = await http.post("/tasks", json={"workflow_name": seed.workflow("pair")})
    assert (status.status_code, status.json()) == (410, None)
    assert (refused.status_code, refused.json()) == (418, {})
    assert ours.status_code == 409 and "takes no new tasks" in ours.json()["detail"]
    release(hold)
    await wait_for(lambda: _state(seed, task["uuid"], "PAUSED"), "the stop's pause to take effect")

    started = await http.post("/orchestrator/start")
    assert (started.status_code, started.content) == (204, b"")
    assert (await http.post("/orchestrator/start")).status_code == 409
    assert (await http.get("/orchestrator/status")).status_code == 204
    await seed.reaches(task["uuid"], 4)  # the start resumed what the stop had paused
    assert (await http.post("/task/", json={"workflow_name": seed.workflow("pair")})).status_code == 200


async def test_config_reload_applies_workflows_all_or_nothing(seed: SeedApi) -> None:
    http = seed.http
    nodes = seed.lab.nodes_file.read_bytes()
    workflows = seed.lab.workflows_file.read_text()
    backwards = {"name": "backwards", "steps": [seed.node("b")]}
    grown = workflows.replace('"workflows": [', f'"workflows": [{json.dumps(backwards)}, ')
    broken = workflows.replace(seed.node("g"), "nowhere")

    bad = await http.patch("/config/reload", files=[("files", nodes), ("files", broken.encode())])
    one = await http.patch("/config/reload", files=[("files", nodes)])
    before = (await http.get("/workflow/")).json()
    good = await http.patch("/config/reload", files=[("files", nodes), ("files", grown.encode())])
    after = (await http.get("/workflow/")).json()

    assert bad.status_code == 422
    where = "workflows.json (uploaded): $.workflows[1].steps[1]: unknown node 'nowhere'"
    assert any(where in problem for problem in bad.json()["detail"]["problems"])
    assert one.status_code == 422 and "send two" in one.json()["detail"]
    assert "backwards" not in before
    assert (good.status_code, good.json()) == (200, {"loaded_workflows": 4, "loaded_nodes": 6})
    assert after["backwards"] == [{"position": 0, "name": "node b"}]
    pair = [{"position": 0, "name": "node a"}, {"position": 1, "name": "node b"}]
    assert after[seed.workflow("pair")] == pair
    task = await http.post("/task/", json={"workflow_name": "backwards", "args": None})
    assert task.status_code == 200
    seed.started.append(task.json()["uuid"])
    await seed.reaches(task.json()["uuid"], 4)


async def test_logs_come_from_the_step_records(seed: SeedApi) -> None:
    task = await seed.add("pair")
    await seed.reaches(task["uuid"], 4)

    logs = (await seed.http.get("/logs/")).json()
    execution = (await seed.http.get("/logs/execution")).json()

    lines = [row["message"] for row in logs if row["logger_name"] == f"Node {seed.node('a')}"]
    assert f"{seed.node('a')} runs for {task['uuid']}" in lines
    assert [row["id"] for row in logs] == sorted(row["id"] for row in logs)
    rows = execution[task["uuid"]]
    assert [r["log"]["name"] for r in rows] == ["w. acc.", seed.node("a"), "w. acc.", seed.node("b")]
    assert all(r["log"]["start"] <= r["log"]["end"] for r in rows)
    assert rows[0]["wf"]["name"] == seed.workflow("pair")


# --- helpers --------------------------------------------------------------------------------------


def lab_hold() -> str:
    return JOURNAL.hold(f"hold-{uuid.uuid4().hex[:8]}")


def release(name: str) -> None:
    JOURNAL.release(name)


async def _ours(seed: SeedApi, task_id: str) -> dict[str, object]:
    response: httpx.Response = await seed.http.get(f"/tasks/{task_id}")
    return response.json()  # type: ignore[no-any-return]


async def _state(seed: SeedApi, task_id: str, state: str) -> bool:
    return (await _ours(seed, task_id))["state"] == state


async def _active_on(seed: SeedApi, task_id: str, node_id: str) -> bool:
    return JOURNAL.started(node_id, task_id)
