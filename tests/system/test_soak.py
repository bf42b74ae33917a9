"""The soak (`make soak`, minutes; not in `make test`): 1000 tasks of 5 steps through the HTTP API, on a
Temporal dev server, a `task-scheduler worker` and a `task-scheduler api` of their own; 10% of the steps
fail at random, and the test, as the lab's operator, continues each stopped task (retry or next, at
random). At the end every task is FINISHED, each node's statistics add up to the tasks' step records
and to what its driver did, every NodeWorkflow continued as new (its ledger carried whole), and the
worker's resident memory levelled off instead of growing with the number of tasks run."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability import (
    ApiProcess,
    Operator,
    Process,
    all_nodes_hosted,
    api_process,
    rss_bytes,
    tasks_in_state,
    worker_process,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from task_scheduler.devserver import DevServer
from task_scheduler.engine.contracts import node_workflow_id
from task_scheduler.engine.ledger import LedgerState
from task_scheduler.workflows.node import NodeWorkflow

pytestmark = pytest.mark.soak

TASKS = 1000
IN_FLIGHT = 100  # tasks started but not finished: a busy lab, not a backlog of a thousand
NODES = [f"node-{n}" for n in range(1, 6)]
FAILURE_RATE = 0.1
NEXT_RATE = 0.5  # the operator's choice after a failure: move on, or run the step again
STEP_S = 0.01
SOAK_TIMEOUT_S = 900.0
MEMORY_GROWTH_LIMIT = 1.25  # the last quarter's peak RSS against the second quarter's

SOAK_NODES = '''
"""The soak's node: a short step that fails at random (its node's `failure_rate`), each run logged as
"<ok|fail> <task id> <node id>"."""

import random
import time

from task_scheduler import BaseNode, StepResult


class SoakNode(BaseNode):
    def __init__(self, id, name, properties=None):
        super().__init__(id, name, properties)
        self._random = random.Random(id)

    def _execute(self, src, dst, task_id, args=None):
        time.sleep(float(self.properties["sleep_s"]))
        failed = self._random.random() < float(self.properties["failure_rate"])
        with open(self.properties["log"], "a", encoding="utf-8") as log:
            log.write(f"{'fail' if failed else 'ok'} {task_id} {self.id}\\n")
        return StepResult(status=1 if failed else 0, message="failed at random" if failed else "done")
'''

StartDevServer = Callable[..., Awaitable[DevServer]]


def write_soak_lab(folder: Path) -> tuple[Path, Path, Path]:
    """nodes.json, workflows.json (one workflow, "soak", over the five nodes) and the drivers' log."""
    log = folder / "drivers.log"
    properties = {"sleep_s": STEP_S, "failure_rate": FAILURE_RATE, "log": str(log)}
    nodes = [{"id": n, "name": n, "type": "SoakNode", "properties": properties} for n in NODES]
    (folder / "soak_nodes.py").write_text(SOAK_NODES, encoding="utf-8")
    (folder / "nodes.json").write_text(json.dumps({"modules": ["soak_nodes.py"], "nodes": nodes}))
    workflows = {"workflows": [{"name": "soak", "steps": NODES}]}
    (folder / "workflows.json").write_text(json.dumps(workflows))
    return folder / "nodes.json", folder / "workflows.json", log


@dataclass
class Memory:
    """The worker's resident memory, sampled every second while the soak runs."""

    pid: int
    samples: list[tuple[float, int]] = field(default_factory=list)

    async def sample(self) -> None:
        while True:
            self.samples.append((time.monotonic(), rss_bytes(self.pid)))
            await asyncio.sleep(1.0)  # the sampling period

    def quarter_peaks_mib(self) -> list[float]:
        values = [rss for _, rss in self.samples if rss]
        size = max(1, len(values) // 4)
        return [max(values[i * size : (i + 1) * size] or [0]) / 2**20 for i in range(4)]


async def run_tasks(http: httpx.AsyncClient) -> list[str]:
    """Start TASKS tasks, never more than IN_FLIGHT unfinished at once; wait until all are FINISHED."""
    started: list[str] = []
    deadline = time.monotonic() + SOAK_TIMEOUT_S
    while True:
        finished = len(await tasks_in_state(http, "FINISHED"))
        if finished >= TASKS:
            return started
        assert time.monotonic() < deadline, f"only {finished} of {TASKS} tasks finished in time"
        room = min(IN_FLIGHT - (len(started) - finished), TASKS - len(started))
        for _ in range(max(0, room)):
            response = await http.post("/tasks", json={"workflow_name": "soak", "args": {}})
            assert response.status_code == 201, response.text
            started.append(response.json()["task_id"])
        await asyncio.sleep(0.5)  # the submitter's pace


async def ledgers(address: str) -> dict[str, LedgerState]:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    return {
        node_id: await client.get_workflow_handle_for(NodeWorkflow.run, node_workflow_id(node_id)).query(
            NodeWorkflow.status
        )
        for node_id in NODES
    }


def step_records(tasks: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Per node: runs of its steps, and how many of those steps SUCCEEDED or were SKIPPED."""
    per_node: dict[str, Counter[str]] = {n: Counter() for n in NODES}
    for task in tasks:
        for step in task["steps"]:
            per_node[step["node"]]["runs"] += step["runs"]
            per_node[step["node"]][step["outcome"]] += 1
    return per_node


def driver_runs(log: Path) -> dict[str, Counter[str]]:
    per_node: dict[str, Counter[str]] = {n: Counter() for n in NODES}
    for line in log.read_text(encoding="utf-8").splitlines():
        outcome, _, node_id = line.split()
        per_node[node_id][outcome] += 1
    return per_node


@pytest.mark.timeout(SOAK_TIMEOUT_S + 300)
async def test_soak_1000_tasks_with_random_failures_all_finish_and_the_books_balance(
    start_dev_server: StartDevServer, tmp_path: Path, owned: list[Process | ApiProcess]
) -> None:
    began = time.monotonic()
    nodes_file, workflows_file, log = write_soak_lab(tmp_path)
    server = await start_dev_server(db_file=tmp_path / "temporal.sqlite")
    files = (nodes_file, workflows_file, server.address, "soak", tmp_path)
    worker, api = worker_process(*files), api_process(*files)
    owned += [worker, api]
    worker.start()
    await api.start()
    memory = Memory(worker.pid)
    async with api.client() as http:
        await all_nodes_hosted(http, NODES)
        operator = Operator(http, next_rate=NEXT_RATE)
        background = [asyncio.create_task(operator.run()), asyncio.create_task(memory.sample())]
        try:
            ids = await run_tasks(http)
        finally:
            for task in background:
                task.cancel()
        tasks = [(await http.get(f"/tasks/{task_id}")).json() for task_id in ids]
    books = await ledgers(server.address)
    elapsed_s = time.monotonic() - began

    assert len(ids) == TASKS
    assert all(t["state"] == "FINISHED" and t["temporal_status"] == "COMPLETED" for t in tasks)
    records, drivers = step_records(tasks), driver_runs(log)
    for node_id, ledger in books.items():
        stats, steps, driver = ledger.stats, records[node_id], drivers[node_id]
        assert (stats.calls, stats.lost) == (steps["runs"], 0), (node_id, stats, steps)
        assert stats.successes == steps["SUCCEEDED"] == driver["ok"], (node_id, stats, steps, driver)
        assert stats.failures == stats.calls - stats.successes == driver["fail"], (node_id, stats, driver)
        assert steps["SUCCEEDED"] + steps["SKIPPED"] == TASKS, (node_id, steps)
        assert ledger.runs > 1 and ledger.holder is None, (node_id, ledger.runs, ledger.holder)
    assert operator.modes["retry"] and operator.modes["next"], operator.modes
    peaks = memory.quarter_peaks_mib()
    print(
        f"soak: {TASKS} tasks in {elapsed_s:.0f} s; continues {dict(operator.modes)}; ledger runs "
        f"{[b.runs for b in books.values()]}; worker RSS peak per quarter (MiB) "
        f"{[round(p) for p in peaks]}, median {statistics.median(r for _, r in memory.samples) / 2**20:.0f}"
    )
    assert peaks[3] <= peaks[1] * MEMORY_GROWTH_LIMIT, f"worker memory kept growing: {peaks} MiB"
    assert worker.alive() and api.process.alive()
