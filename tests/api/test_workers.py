"""Liveness per PC over HTTP: `GET /workers`, each node's `online`, `/health`'s `workers`, and a task whose
step needs an offline PC's node. Two named workers: pc-1 in this process, pc-2 a `task-scheduler worker`
subprocess on a host of its own (`pc-2.test`), stopped cleanly or killed; the workflows run in a
workflows-only worker, as on the server host."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import JOURNAL, ServeApp, Tasks, TestLab, bearer, lab_fixtures, token, wait_for
from pc_workers import PcWorker, PcWorkers
from temporalio.client import Client

from task_scheduler.client.handles import ledger_handle
from task_scheduler.devserver import DevServer
from task_scheduler.readers.pollers import LIVE_POLLER_WINDOW_S
from task_scheduler.settings import Settings
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.node import NodeWorkflow

WORKFLOWS: dict[str, list[Any]] = {"across": ["a1", "b1"], "across-late": ["a1", "b2"]}
NODES = {
    "a1": {"worker": "pc-1"},
    "b1": {"worker": "pc-2", "offline_after_s": 600},
    "b2": {"worker": "pc-2", "offline_after_s": 1},
}


@dataclass
class PcLab:
    lab: TestLab
    http: httpx.AsyncClient
    pcs: PcWorkers
    address: str
    task_queue: str
    client: Client

    def start_pc2(self) -> PcWorker:
        return self.pcs.start(self.lab, "pc-2", self.address, self.task_queue)

    @property
    def pc2(self) -> PcWorker:
        return self.pcs.started[-1]

    async def get(self, path: str) -> Any:
        response = await self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    async def worker(self, name: str) -> dict[str, Any]:
        return next(w for w in await self.get("/workers") if w["name"] == name)  # type: ignore[no-any-return]

    async def nodes(self) -> dict[str, dict[str, Any]]:
        return {n["id"]: n for n in await self.get("/nodes")}

    async def online(self, name: str) -> bool:
        return bool((await self.worker(name))["online"])


@pytest.fixture
async def pc_lab(
    tmp_path: Path,
    temporal_client: Client,
    temporal_server: DevServer,
    api_settings: Settings,
    serve_app: ServeApp,
) -> AsyncIterator[PcLab]:
    lab = lab_fixtures.write_lab(tmp_path / "lab", WORKFLOWS, NODES)
    task_queue = f"pcs-{uuid.uuid4()}"
    settings = api_settings.model_copy(update={"task_queue": task_queue})
    flows = WorkerOptions(lab=lab.config, task_queue=task_queue, host_nodes=False, grace_s=1.0)
    pc1 = WorkerOptions(lab=lab.config, name="pc-1", task_queue=task_queue, run_workflows=False, grace_s=1.0)
    pcs = PcWorkers(tmp_path)
    try:
        async with LabWorker(temporal_client, flows), LabWorker(temporal_client, pc1):
            url = await serve_app(settings=settings, lab=lab.config, client=temporal_client)
            async with httpx.AsyncClient(base_url=url, headers=bearer(token("operator")), timeout=30) as http:
                pc = PcLab(lab, http, pcs, temporal_server.address, task_queue, temporal_client)
                pc.start_pc2()
                await wait_for(lambda: pc.online("pc-2"), f"pc-2 online ({pc.pc2.tail()})", timeout_s=30)
                yield pc
    finally:
        pcs.stop_all()


@pytest.fixture
async def pc_tasks(pc_lab: PcLab) -> AsyncIterator[Tasks]:
    started = Tasks(pc_lab.http, pc_lab.lab, pc_lab.client)
    yield started
    await started.cleanup()


async def test_workers_lists_each_pc_its_host_and_nodes_and_the_workflow_worker(pc_lab: PcLab) -> None:
    workers = await pc_lab.get("/workers")

    by_name = {w["name"]: w for w in workers if w["nodes"]}
    a1, b1, b2 = (pc_lab.lab.node(n) for n in ("a1", "b1", "b2"))
    assert (by_name["pc-1"]["nodes"], by_name["pc-1"]["online"]) == ([a1], True)
    pc2 = by_name["pc-2"]
    assert (sorted(pc2["nodes"]), pc2["online"], pc2["host"]) == (sorted([b1, b2]), True, "pc-2.test")
    assert pc2["identity"].startswith(f"{pc_lab.pc2.process.pid}@pc-2.test/")
    assert pc2["last_seen"] is not None and pc2["offline_since"] is None
    assert (by_name["pc-1"]["runs_workflows"], pc2["runs_workflows"]) == (False, False)
    (flows,) = [w for w in workers if not w["nodes"]]
    assert (flows["name"], flows["online"], flows["runs_workflows"]) == (None, True, True)
    nodes = await pc_lab.nodes()
    assert [(nodes[n]["worker"], nodes[n]["online"], nodes[n]["state"]) for n in (a1, b1)] == [
        ("pc-1", True, "AVAILABLE"),
        ("pc-2", True, "AVAILABLE"),
    ]
    assert nodes[b1]["worker_host"] == "pc-2.test"
    health = await pc_lab.get("/health")
    assert (health["workers"], health["workflow_worker"]) == ({"pc-1": True, "pc-2": True}, True)


async def test_workers_pc_stopped_cleanly_is_offline_at_once_in_workers_nodes_and_health(
    pc_lab: PcLab,
) -> None:
    b1 = pc_lab.lab.node("b1")

    assert await pc_lab.pc2.terminate() == 0
    # Read at once, no waiting: the server still lists pc-2's pollers as recent, the ledgers say it stopped.
    pc2 = await pc_lab.worker("pc-2")
    nodes = await pc_lab.nodes()
    health = await pc_lab.get("/health")

    assert (pc2["online"], pc2["host"]) == (False, "pc-2.test"), pc2
    assert pc2["offline_since"] is not None and pc2["last_seen"] is not None
    assert (nodes[b1]["online"], nodes[b1]["hosted"], nodes[b1]["state"]) == (False, False, "OFFLINE")
    assert nodes[b1]["offline_since"] is not None
    assert nodes[pc_lab.lab.node("a1")]["online"] is True
    assert health["workers"] == {"pc-1": True, "pc-2": False}
    assert health["nodes"][b1] is False


async def test_workers_pc_killed_is_offline_within_the_window_and_its_idle_node_offline(
    pc_lab: PcLab,
) -> None:
    b1 = pc_lab.lab.node("b1")
    pc1_seen: list[bool] = []

    async def pc2_offline() -> dict[str, Any] | None:
        workers = {w["name"]: w for w in await pc_lab.get("/workers")}
        pc1_seen.append(workers["pc-1"]["online"])
        return None if workers["pc-2"]["online"] else workers["pc-2"]

    killed_at = time.monotonic()
    pc_lab.pc2.kill()
    pc2 = await wait_for(
        pc2_offline, "pc-2 counted offline", timeout_s=LIVE_POLLER_WINDOW_S + 15, interval_s=0.5
    )
    took_s = time.monotonic() - killed_at

    assert took_s <= LIVE_POLLER_WINDOW_S + 3, f"pc-2 looked online {took_s:.1f} s after its kill"
    assert all(pc1_seen), "the live pc-1 was counted offline meanwhile"
    assert pc2["offline_since"] == pc2["last_seen"]  # its last poll: a kill announces nothing
    # The ledger still says AVAILABLE (a kill tells it nothing); the API says what is true.
    ledger = await ledger_handle(pc_lab.client, b1).query(NodeWorkflow.status)
    node = (await pc_lab.nodes())[b1]
    assert (ledger.state.value, node["state"], node["online"]) == ("AVAILABLE", "OFFLINE", False)
    assert "pc-2" in node["reason"]
    assert (await pc_lab.get("/health"))["workers"] == {"pc-1": True, "pc-2": False}


async def test_task_step_on_a_stopped_pc_is_waiting_with_the_reason_then_finishes_when_it_is_back(
    pc_lab: PcLab, pc_tasks: Tasks
) -> None:
    b1, b2 = pc_lab.lab.node("b1"), pc_lab.lab.node("b2")
    assert await pc_lab.pc2.terminate() == 0

    soon = (await pc_tasks.start("across"))["task_id"]
    late = (await pc_tasks.start("across-late"))["task_id"]

    async def said(task_id: str, reason: str) -> dict[str, Any] | None:
        task = await pc_tasks.show(task_id)
        return task if (task["reason"] or "").startswith(reason) else None

    waiting = await wait_for(lambda: said(soon, f"waiting for node {b1}: "), "the task says it waits")
    assert waiting["reason"] == f"waiting for node {b1}: its worker pc-2 is not online"
    assert (waiting["state"], [s["outcome"] for s in waiting["steps"]]) == (
        "ACTIVE",
        ["SUCCEEDED", "WAITING"],
    )
    # b2 may be without its worker for 1 s only (`offline_after_s`): the task says since when.
    offline = await wait_for(
        lambda: said(late, f"node {b2}: its worker pc-2 has been offline since "), "offline"
    )
    assert offline["reason"].endswith(" UTC") and offline["steps"][1]["outcome"] == "WAITING"

    pc_lab.start_pc2()
    for task_id in (soon, late):
        done = await pc_tasks.reaches(task_id, "FINISHED", timeout_s=30)
        assert (done["reason"], [s["outcome"] for s in done["steps"]]) == (None, ["SUCCEEDED", "SUCCEEDED"])


async def test_task_step_waiting_in_its_nodes_line_shows_waiting_and_its_place(tasks: Tasks) -> None:
    hold = tasks.hold()
    first = (await tasks.start("held", {"hold": hold}))["task_id"]
    await tasks.step_running(first)
    second = (await tasks.start("held", {"hold": hold}))["task_id"]

    async def in_line() -> dict[str, Any] | None:
        step = (await tasks.show(second))["steps"][0]
        return step if step["waiting_position"] == 1 else None

    step = await wait_for(in_line, "the second task's step in line, first")
    running = (await tasks.show(first))["steps"][0]
    assert (step["outcome"], running["outcome"], running["waiting_position"]) == ("WAITING", "RUNNING", None)
    # Its worker is online: it waits for the step ahead, which holds the node (the ledger says since when).
    reason = (await tasks.show(second))["reason"]
    assert reason.startswith(f"waiting for node {tasks.node('h1')} (number 1 in its line): it is in use by ")
    assert f"task {first} step 1" in reason

    tasks.release(hold)
    for task_id in (first, second):
        assert (await tasks.reaches(task_id, "FINISHED"))["reason"] is None
    assert JOURNAL.started(tasks.node("h1"), second)


async def test_task_step_waiting_for_a_node_in_error_says_so(tasks: Tasks) -> None:
    stopped = (await tasks.start("failing"))["task_id"]
    await tasks.reaches(stopped, "ERROR")  # its failure left node f in ERROR, for an operator to check
    behind = (await tasks.start("failing"))["task_id"]

    async def explained() -> dict[str, Any] | None:
        task = await tasks.show(behind)
        refused = "is ERROR" in (task["reason"] or "")  # once the refusal's heartbeat reached the server
        return task if task["steps"][0]["outcome"] == "WAITING" and refused else None

    task = await wait_for(explained, "the waiting task's reason")
    assert task["reason"].startswith(f"waiting for node {tasks.node('f')}: node {tasks.node('f')} is ERROR")
    assert "waiting for a restart" in task["reason"]
