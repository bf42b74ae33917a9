"""The configuration on several PCs, over HTTP: the API imports no driver module, and a reload applies
what the API uses at once but refuses driver settings a running worker was not started with."""

from __future__ import annotations

import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import MakeClient, ServeApp, bearer, lab_fixtures, serving, token, wait_for
from temporalio.client import Client

from task_scheduler import load_config
from task_scheduler.api.app import create_app
from task_scheduler.engine.loader import NodesOfWorker
from task_scheduler.settings import Settings
from task_scheduler.worker import LabWorker, WorkerOptions

MISSING_SDK = "acc_vendor_sdk_not_installed"


async def test_api_serves_a_lab_whose_driver_module_cannot_be_imported_in_its_process(
    api_settings: Settings, temporal_client: Client, tmp_path: Path
) -> None:
    driver = f"pc2_nodes_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{driver}.py").write_text(f"import {MISSING_SDK}\n")
    nodes = [
        {"id": f"b1-{driver}", "name": "Pump", "type": "Pump", "worker": "pc-2", "module": f"{driver}.py"},
        {"id": f"b2-{driver}", "name": "Valve", "type": f"{MISSING_SDK}.valves:Valve", "worker": "pc-2"},
    ]
    (tmp_path / "nodes.json").write_text(json.dumps({"nodes": nodes, "modules": [f"{driver}.py"]}))
    workflow = {"name": f"dose-{driver}", "steps": [n["id"] for n in nodes]}
    (tmp_path / "workflows.json").write_text(json.dumps({"workflows": [workflow]}))
    settings = api_settings.model_copy(
        update={"nodes_file": tmp_path / "nodes.json", "workflows_file": tmp_path / "workflows.json"}
    )

    app = create_app(settings, client=temporal_client)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=bearer(token("admin"))) as admin:
        shown = await admin.get("/config")
        listed = await admin.get("/workflows")
        reloaded = await admin.post("/config/reload")

    assert shown.status_code == 200, shown.text
    assert shown.json()["nodes"] == [n["id"] for n in nodes]
    assert [w["name"] for w in listed.json()] == [workflow["name"]]
    assert reloaded.status_code == 200, reloaded.text
    assert driver not in sys.modules


@contextlib.asynccontextmanager
async def named_worker(client: Client, lab: Any, name: str, task_queue: str) -> AsyncIterator[LabWorker]:
    """A worker `--name name` started from the lab's files as they are now (its PC's copy)."""
    config = load_config(lab.nodes_file, lab.workflows_file, hosted=NodesOfWorker(name))
    options = WorkerOptions(lab=config, name=name, task_queue=task_queue, grace_s=1.0)
    async with LabWorker(client, options) as worker:
        yield worker


def edit_nodes(lab: Any, changes: dict[str, dict[str, Any]]) -> None:
    """Change fields of nodes (by short name) in the lab's nodes.json, as an engineer would."""
    data = json.loads(lab.nodes_file.read_text())
    for node in data["nodes"]:
        short = next(s for s, i in lab.node_ids.items() if i == node["id"])
        node.update(changes.get(short, {}))
    lab.nodes_file.write_text(json.dumps(data, indent=2))


@pytest.fixture
def pc2_lab(tmp_path: Path) -> Any:
    """Nodes a and b on pc-2, c on pc-9 (whose worker never runs)."""
    workers = {"a": {"worker": "pc-2"}, "b": {"worker": "pc-2"}, "c": {"worker": "pc-9"}}
    return lab_fixtures.write_lab(tmp_path / "lab", {"w": ["a", "b", "c"]}, nodes=workers)


async def test_config_reload_applies_api_settings_and_refuses_driver_settings_a_running_worker_lacks(
    serve_app: ServeApp,
    make_client: MakeClient,
    api_settings: Settings,
    temporal_client: Client,
    pc2_lab: Any,
) -> None:
    queue = f"reload-{uuid.uuid4()}"
    settings = api_settings.model_copy(update={"task_queue": queue})
    admin = make_client(
        "admin", base_url=await serve_app(settings=settings, lab=pc2_lab.config, client=temporal_client)
    )
    a, b, c = (pc2_lab.node(short) for short in "abc")
    async with named_worker(temporal_client, pc2_lab, "pc-2", queue):
        await wait_for(lambda: _hosted(admin, a, b), "pc-2's nodes hosted")
        edit_nodes(pc2_lab, {"a": {"name": "Arm renamed", "timeout_s": 5, "retry": {"max_attempts": 2}}})
        edit_nodes(pc2_lab, {"c": {"properties": {"sleep_s": 0.5}}})  # its worker is offline

        accepted = await admin.post("/config/reload")

        assert accepted.status_code == 200, accepted.text
        assert (await admin.get(f"/nodes/{a}")).json()["name"] == "Arm renamed"
        edit_nodes(
            pc2_lab,
            {"a": {"name": "Arm again", "properties": {"sleep_s": 0.1}}, "b": {"emulate": {"duration_s": 2}}},
        )

        refused = await admin.post("/config/reload")

        assert refused.status_code == 409, refused.text
        lines = refused.json()["detail"].splitlines()
        assert lines == [
            f"node {n}: the driver settings in the new nodes.json differ from those pc-2's worker runs; copy "
            "the file to pc-2 and restart its worker (task-scheduler worker --name pc-2), then reload"
            for n in (a, b)
        ]
        assert (await admin.get(f"/nodes/{a}")).json()["name"] == "Arm renamed"  # nothing applied
    async with named_worker(temporal_client, pc2_lab, "pc-2", queue):
        await wait_for(lambda: _hosted(admin, a, b), "pc-2's nodes hosted again")

        restarted = await admin.post("/config/reload")

        assert restarted.status_code == 200, restarted.text
        assert (await admin.get(f"/nodes/{a}")).json()["name"] == "Arm again"
    assert c in restarted.json()["nodes"]


async def _hosted(http: httpx.AsyncClient, *node_ids: str) -> bool:
    shown = [(await http.get(f"/nodes/{n}")).json() for n in node_ids]
    return all(node["hosted"] for node in shown)
