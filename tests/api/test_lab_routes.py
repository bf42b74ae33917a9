"""The lab over HTTP: workflow definitions, health, lab-wide pause and resume, configuration reload."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
from api_support import MakeClient, ServeApp, Tasks, wait_for
from temporalio.client import Client

from task_scheduler import load_config


async def test_list_workflows_gives_every_workflow_and_its_steps(
    api_lab: Any, viewer: httpx.AsyncClient
) -> None:
    response = await viewer.get("/workflows")

    assert response.status_code == 200
    workflows = {w["name"]: w for w in response.json()}
    assert set(workflows) == {w.name for w in api_lab.config.workflows}
    failing = workflows[api_lab.workflow("failing")]
    assert [s["node"] for s in failing["steps"]] == [api_lab.node("f"), api_lab.node("g")]
    assert failing["steps"][0]["args"] == {"fail": True}


async def test_show_workflow_gives_its_steps_and_unknown_is_404(
    api_lab: Any, viewer: httpx.AsyncClient
) -> None:
    name = api_lab.workflow("quick")
    shown = await viewer.get(f"/workflows/{name}")
    unknown = await viewer.get("/workflows/no-such-workflow")

    assert shown.status_code == 200
    assert shown.json()["name"] == name
    assert [s["node"] for s in shown.json()["steps"]] == [api_lab.node("a"), api_lab.node("b")]
    assert unknown.status_code == 404
    assert "no-such-workflow" in unknown.json()["detail"]
    assert name in unknown.json()["detail"]


async def test_health_needs_no_token_and_tells_which_nodes_have_a_worker(
    api_lab: Any, anonymous: httpx.AsyncClient, temporal_client: Client
) -> None:
    response = await anonymous.get("/health")

    assert response.status_code == 200, response.text
    health = response.json()
    assert health["api"] == "ok"
    assert health["temporal"] is True
    assert health["workflow_worker"] is True
    assert health["nodes"] == dict.fromkeys(api_lab.node_ids.values(), True)
    assert health["detail"] is None


async def test_health_says_when_no_worker_hosts_the_nodes(
    serve_app: ServeApp, make_client: MakeClient, api_settings: Any, api_lab: Any, temporal_client: Client
) -> None:
    lonely = api_settings.model_copy(update={"task_queue": f"{api_settings.task_queue}-no-worker"})
    other = write_lab_copy(api_lab, Path(api_lab.folder).parent / "unhosted", rename_nodes=True)
    url = await serve_app(settings=lonely, lab=other, client=temporal_client)

    health = (await make_client(base_url=url).get("/health")).json()

    assert health["temporal"] is True
    assert health["workflow_worker"] is False
    assert set(health["nodes"].values()) == {False}


async def test_lab_pause_pauses_every_running_task_after_its_step_and_resume_continues_them(
    tasks: Tasks, operator: httpx.AsyncClient
) -> None:
    hold = tasks.hold()
    first = (await tasks.start("lab", {"hold": hold}))["task_id"]
    await tasks.step_running(first)
    second = (await tasks.start("lab", {"hold": hold}))["task_id"]  # waits for node l1
    await tasks.reaches(second, "ACTIVE")
    done = (await tasks.start("quick"))["task_id"]
    await tasks.reaches(done, "FINISHED")

    async def both_visible() -> bool:
        listed = (await operator.get("/tasks", params={"state": "ACTIVE"})).json()["tasks"]
        return {first, second} <= {t["task_id"] for t in listed}

    await wait_for(both_visible, "both tasks ACTIVE in visibility")
    paused = await operator.post("/lab/pause")

    assert paused.status_code == 200, paused.text
    assert paused.json() == {"done": sorted([first, second]), "refused": {}}
    tasks.release(hold)
    for task_id in (first, second):
        task = await tasks.reaches(task_id, "PAUSED")
        assert [s["outcome"] for s in task["steps"]] == ["SUCCEEDED", "PENDING"]

    async def both_paused_in_visibility() -> bool:
        listed = (await operator.get("/tasks", params={"state": "PAUSED"})).json()["tasks"]
        return {first, second} <= {t["task_id"] for t in listed}

    await wait_for(both_paused_in_visibility, "both tasks PAUSED in visibility")
    resumed = await operator.post("/lab/resume")

    assert resumed.status_code == 200, resumed.text
    assert resumed.json() == {"done": sorted([first, second]), "refused": {}}
    for task_id in (first, second):
        await tasks.reaches(task_id, "FINISHED")


async def test_lab_resume_cancels_pauses_not_yet_taken(tasks: Tasks, operator: httpx.AsyncClient) -> None:
    hold = tasks.hold()
    task_id = (await tasks.start("lab", {"hold": hold}))["task_id"]
    await tasks.step_running(task_id)
    await wait_for(lambda: _listed_in(operator, task_id, "ACTIVE"), "the task ACTIVE in visibility")
    assert (await operator.post("/lab/pause")).json()["done"] == [task_id]

    resumed = await operator.post("/lab/resume")

    assert resumed.json() == {"done": [task_id], "refused": {}}
    assert (await tasks.show(task_id))["pause_requested"] is False
    tasks.release(hold)
    await tasks.reaches(task_id, "FINISHED")


async def _listed_in(http: httpx.AsyncClient, task_id: str, state: str) -> bool:
    listed = (await http.get("/tasks", params={"state": state})).json()["tasks"]
    return task_id in {t["task_id"] for t in listed}


def write_lab_copy(lab: Any, folder: Path, rename_nodes: bool = False) -> Any:
    """A copy of the session lab's files in `folder` (same node ids, unless renamed), loaded."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("nodes.json", "workflows.json"):
        text = (Path(lab.folder) / name).read_text()
        if rename_nodes:
            text = text.replace(f"-{lab.suffix}", f"-{lab.suffix}x")
        (folder / name).write_text(text)
    return load_config(folder / "nodes.json", folder / "workflows.json")


async def test_config_reload_reads_the_files_again_and_running_tasks_keep_their_snapshot(
    tasks: Tasks,
    serve_app: ServeApp,
    make_client: MakeClient,
    api_lab: Any,
    temporal_client: Client,
    tmp_path: Path,
) -> None:
    lab = write_lab_copy(api_lab, tmp_path / "lab")
    url = await serve_app(lab=lab, client=temporal_client)
    admin = make_client("admin", base_url=url)
    hold = tasks.hold()
    body = {"workflow_name": tasks.workflow("quick"), "args": {"hold": hold}}
    started = await make_client("operator", base_url=url).post("/tasks", json=body)
    assert started.status_code == 201, started.text
    running = started.json()["task_id"]
    tasks.started.append(running)
    await tasks.step_running(running)
    workflows = json.loads((tmp_path / "lab" / "workflows.json").read_text())
    quick = next(w for w in workflows["workflows"] if w["name"] == tasks.workflow("quick"))
    workflows["workflows"].remove(quick)
    workflows["workflows"].append({"name": "reloaded", "steps": [api_lab.node("s")]})
    (tmp_path / "lab" / "workflows.json").write_text(json.dumps(workflows))

    response = await admin.post("/config/reload")

    assert response.status_code == 200, response.text
    assert "reloaded" in response.json()["workflows"]
    assert tasks.workflow("quick") not in response.json()["workflows"]
    assert (await admin.get("/workflows/reloaded")).status_code == 200
    assert (await admin.get(f"/workflows/{tasks.workflow('quick')}")).status_code == 404
    tasks.release(hold)
    finished = await tasks.reaches(running, "FINISHED")
    assert [s["outcome"] for s in finished["steps"]] == ["SUCCEEDED", "SUCCEEDED"]
    assert (await admin.get("/config")).json()["workflows"] == response.json()["workflows"]


async def test_config_reload_of_an_invalid_configuration_is_422_listing_every_problem_and_changes_nothing(
    serve_app: ServeApp, make_client: MakeClient, api_lab: Any, tmp_path: Path
) -> None:
    lab = write_lab_copy(api_lab, tmp_path / "lab")
    url = await serve_app(lab=lab)
    admin = make_client("admin", base_url=url)
    before = (await admin.get("/workflows")).json()
    broken = {
        "workflows": [
            {"name": "ghost", "steps": ["no-such-node"]},
            {"name": "empty", "steps": []},
            {"name": "twice", "steps": [api_lab.node("a")]},
            {"name": "twice", "steps": [api_lab.node("b")]},
        ]
    }
    (tmp_path / "lab" / "workflows.json").write_text(json.dumps(broken))

    response = await admin.post("/config/reload")

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "problem" in detail["message"]
    problems = "\n".join(detail["problems"])
    assert len(detail["problems"]) >= 3, problems
    assert "no-such-node" in problems
    assert "twice" in problems
    assert "$.workflows[1]" in problems
    assert (await admin.get("/workflows")).json() == before


async def test_config_reload_needs_the_admin_role(make_client: MakeClient, serve_app: ServeApp) -> None:
    url = await serve_app()
    for role in ("viewer", "operator"):
        response = await make_client(role, base_url=url).post("/config/reload")
        assert response.status_code == 403
        assert "admin" in response.json()["detail"]
    assert (await make_client("admin", base_url=url).post("/config/reload")).status_code == 200


async def test_config_reload_of_a_lab_whose_files_are_gone_is_422(
    serve_app: ServeApp, make_client: MakeClient, api_lab: Any, tmp_path: Path
) -> None:
    lab = write_lab_copy(api_lab, tmp_path / "lab")
    url = await serve_app(lab=lab)
    shutil.rmtree(tmp_path / "lab")

    response = await make_client("admin", base_url=url).post("/config/reload")

    assert response.status_code == 422
    assert "cannot read" in "\n".join(response.json()["detail"]["problems"])


async def test_api_sees_only_the_tasks_of_its_own_task_queue_and_503s_commands_no_worker_answers(
    serve_app: ServeApp, make_client: MakeClient, api_settings: Any, api_lab: Any, temporal_client: Client
) -> None:
    lonely = api_settings.model_copy(
        update={"task_queue": f"{api_settings.task_queue}-no-worker", "rpc_timeout_s": 1.0}
    )
    other = make_client("operator", base_url=await serve_app(settings=lonely, client=temporal_client))
    started = await other.post("/tasks", json={"workflow_name": api_lab.workflow("quick")})
    assert started.status_code == 201, started.text
    foreign = started.json()["task_id"]
    try:
        await wait_for(lambda: _listed_in(other, foreign, "PENDING"), "the task listed by its own API")
        shown = await other.get(f"/tasks/{foreign}")
        assert shown.status_code == 200, shown.text
        assert (shown.json()["state"], shown.json()["live"]) == ("PENDING", False)
        paused = await other.post(f"/tasks/{foreign}/pause")
        assert paused.status_code == 503, paused.text
        assert "worker" in paused.json()["detail"]

        session = make_client("operator")
        assert not await _listed_in(session, foreign, "PENDING")
        assert foreign not in (await session.post("/lab/pause")).json()["done"]
    finally:
        await temporal_client.get_workflow_handle(foreign).terminate("test over")
