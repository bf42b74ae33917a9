"""Faults while 50 tasks run: the API, a worker and the Temporal dev server are each SIGKILLed in turn
and started again. Afterwards every task is FINISHED with every step record complete, every node is
available again, and no step of a one-attempt node ran twice without an operator's continue (counted
from the drivers' own log). The test is the lab's operator: it continues every task stopped in ERROR
("worker lost during step k"), through the API, as a person would."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from crash_lab import CrashLab, MakeLab
from reliability import (
    ApiProcess,
    Operator,
    Process,
    all_nodes_hosted,
    api_process,
    tasks_in_state,
    wait_for,
    worker_process,
)

from task_scheduler.devserver import DevServer

TASKS = 50
STEP_S = 0.5  # 25 steps a node, >= 12 s of work: every fault comes with work left, even under load
HEARTBEAT_S = 3.0  # a lost worker is noticed in seconds; a server restart may also cost a step
ONE_ATTEMPT = {"heartbeat_timeout_s": HEARTBEAT_S, "properties": {"sleep_s": STEP_S}}
RETRYING = {**ONE_ATTEMPT, "retry": {"max_attempts": 3, "initial_interval_s": 0.2}}
NODES = {
    "hotel": ONE_ATTEMPT,
    "arm": RETRYING,
    "reader": ONE_ATTEMPT,
    "dispenser": RETRYING,
    "camera": ONE_ATTEMPT,
    "storage": RETRYING,
}
WORKFLOWS = {"fetch": ["hotel", "arm", "reader"], "dose": ["dispenser", "camera", "storage"]}
STEPS_TOTAL = TASKS * 3
FINISH_TIMEOUT_S = 90.0

StartDevServer = Callable[..., Awaitable[DevServer]]


async def _all_released(http: httpx.AsyncClient) -> list[dict[str, Any]] | None:
    nodes: list[dict[str, Any]] = (await http.get("/nodes")).json()
    return nodes if all(n["holder"] is None for n in nodes) else None


def ends(lab: CrashLab) -> int:
    """Steps whose driver ran to its end (a cut-off run has a start and no end)."""
    return len({(e.task_id, e.node_id) for e in lab.events() if e.event == "end"})


async def progress(lab: CrashLab, more: int, timeout_s: float = 30) -> None:
    """Wait until `more` steps more are done (the stack works again), with work left for a fault."""
    steps = ends(lab) + more

    async def enough() -> bool:
        return ends(lab) >= steps

    await wait_for(enough, f"{steps} steps done", timeout_s)
    assert ends(lab) < STEPS_TOTAL - 20, "the fault would come after the work was done"


async def start_tasks(http: httpx.AsyncClient) -> list[str]:
    ids = []
    for number in range(TASKS):
        workflow = list(WORKFLOWS)[number % len(WORKFLOWS)]
        response = await http.post("/tasks", json={"workflow_name": workflow, "args": {"n": number}})
        assert response.status_code == 201, response.text
        ids.append(response.json()["task_id"])
    return ids


async def every_task_finished(http: httpx.AsyncClient, ids: list[str]) -> None:
    async def finished() -> bool:
        return {t["task_id"] for t in await tasks_in_state(http, "FINISHED")} >= set(ids)

    try:
        await wait_for(finished, f"all {len(ids)} tasks FINISHED", FINISH_TIMEOUT_S, interval_s=0.3)
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}\n{await why_unfinished(http, ids)}") from None


async def why_unfinished(http: httpx.AsyncClient, ids: list[str]) -> str:
    """The tasks not finished (state, reason, current step) and the nodes' states, for a failure."""
    lines = []
    for task_id in ids:
        task = (await http.get(f"/tasks/{task_id}")).json()
        if task.get("state") != "FINISHED":
            steps = [(s["node"], s["outcome"], s["runs"], s["attempts"]) for s in task.get("steps", [])]
            lines.append(f"{task_id}: {task.get('state')} {task.get('reason')} {steps}")
    for node in (await http.get("/nodes")).json():
        lines.append(f"node {node['id']}: {node['state']} {node['reason']} holder={node['holder']}")
    return "\n".join(lines)


def assert_step_record_complete(task: dict[str, Any]) -> None:
    assert (task["state"], task["temporal_status"]) == ("FINISHED", "COMPLETED"), task
    for step in task["steps"]:
        assert (step["outcome"], step["status"]) == ("SUCCEEDED", 0), step
        assert step["requested_at"] and step["started_at"] and step["finished_at"], step
        assert step["started_at"] <= step["finished_at"], step
        assert step["attempts"] >= 1 and step["runs"] >= 1, step


def assert_no_unexcused_second_run(lab: CrashLab, ids: list[str], operator: Operator) -> None:
    """A one-attempt node's step starts again only after an operator's continue of that step."""
    starts = Counter((e.task_id, e.node_id) for e in lab.events() if e.event == "start")
    one_attempt = {n.id for n in lab.lab.nodes if n.retry.max_attempts == 1}
    for (task_id, node_id), count in starts.items():
        if task_id in ids and node_id in one_attempt:
            allowed = 1 + operator.continued[(task_id, node_id)]
            assert count <= allowed, f"{task_id} ran {count} times on {node_id} ({allowed - 1} continues)"


@pytest.mark.timeout(240)  # the test's own deadlines say what did not happen, and when
async def test_api_worker_and_server_killed_in_turn_while_50_tasks_run_every_task_finishes(
    start_dev_server: StartDevServer,
    tmp_path: Path,
    task_queue: str,
    make_lab: MakeLab,
    owned: list[Process | ApiProcess],
) -> None:
    began = time.monotonic()
    lab = make_lab(nodes=NODES, workflows=WORKFLOWS)
    node_ids = [n.id for n in lab.lab.nodes]
    server = await start_dev_server(db_file=tmp_path / "temporal.sqlite")
    files = (lab.nodes_file, lab.workflows_file, server.address, task_queue, tmp_path)
    worker, api = worker_process(*files), api_process(*files)
    owned += [worker, api]
    worker.start()
    await api.start()
    said = api.process.tail()
    assert f"task_scheduler API on http://127.0.0.1:{api.port} (lab page" in said, said  # where it serves
    assert "Temporal UI  none: set TASK_SCHEDULER_TEMPORAL_UI_URL" in said, said
    async with api.client() as http:
        await all_nodes_hosted(http, node_ids)
        ids = await start_tasks(http)
        operator = Operator(http)
        operating = asyncio.create_task(operator.run())
        try:
            await progress(lab, 10)
            print(f"API killed at {time.time():.3f}")
            api.kill()
            await api.start()

            await progress(lab, 15)
            print(f"worker killed at {time.time():.3f}")
            worker.kill()
            worker = worker_process(*files)
            owned.append(worker)
            worker.start()

            await progress(lab, 15)
            print(f"server killed at {time.time():.3f}")
            server.kill()
            server.start()
            await server.wait_ready()

            await every_task_finished(http, ids)
        finally:
            operating.cancel()
        tasks = [(await http.get(f"/tasks/{task_id}")).json() for task_id in ids]
        # The end of a use that succeeded is recorded within about a second of the step's return.
        nodes = await wait_for(lambda: _all_released(http), "every node released", 30.0)

    for task in tasks:
        assert_step_record_complete(task)
    assert_no_unexcused_second_run(lab, ids, operator)
    assert all((n["state"], n["holder"]) == ("AVAILABLE", None) for n in nodes), nodes
    assert worker.alive() and api.process.alive()
    lost = sum(n["stats"]["lost"] for n in nodes)
    print(f"faults: {time.monotonic() - began:.1f} s, {lost} uses lost, continues {dict(operator.modes)}")
