"""A worker's own metrics endpoint: `task-scheduler worker --metrics-port N` in a subprocess (the real
CLI, its own lab and task queue, on the session's dev server), a task run through the API, then its
port scraped: our metrics per hosted node, the process's, and the Temporal SDK's (`temporal_...`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import MakeClient, ServeApp, Tasks, lab_fixtures, wait_for
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from task_scheduler.devserver import DevServer, free_port
from task_scheduler.settings import Settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class MetricsWorker:
    url: str
    tasks: Tasks
    process: subprocess.Popen[bytes]
    output: Path

    async def scrape(self) -> tuple[set[str], Samples]:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(self.url)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        names, samples = set(), {}
        for family in text_string_to_metric_families(response.text):
            names.add(family.name)
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return names, samples


def _start_worker(
    lab: Any, address: str, task_queue: str, port: int, output: Path
) -> subprocess.Popen[bytes]:
    command = [
        *[sys.executable, "-m", "task_scheduler", "worker", "--metrics-port", str(port)],
        *["-n", str(lab.nodes_file), "-w", str(lab.workflows_file)],
        *["--address", address, "--task-queue", task_queue, "--grace-s", "1"],
    ]
    with output.open("wb") as sink:
        return subprocess.Popen(
            command,
            cwd=lab.folder,  # no stray .env of the repository is read
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
async def metrics_worker(
    tmp_path: Path,
    temporal_server: DevServer,
    temporal_client: Client,
    api_settings: Settings,
    serve_app: ServeApp,
    make_client: MakeClient,
) -> AsyncIterator[MetricsWorker]:
    lab = lab_fixtures.write_lab(tmp_path / "lab", {"w": ["a", "b"]})
    task_queue = f"metrics-{uuid.uuid4()}"
    port = free_port()
    output = tmp_path / "worker.log"
    process = _start_worker(lab, temporal_server.address, task_queue, port, output)
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        async def answers() -> bool:
            assert process.poll() is None, output.read_text(errors="replace")
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(url)).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(answers, "the worker's metrics endpoint", timeout_s=30, interval_s=0.2)
        settings = api_settings.model_copy(update={"task_queue": task_queue})
        api = await serve_app(settings=settings, lab=lab.config, client=temporal_client)
        tasks = Tasks(make_client("operator", base_url=api), lab, temporal_client)
        try:
            yield MetricsWorker(url, tasks, process, output)
        finally:
            await tasks.cleanup()
    finally:
        _stop(process)


async def test_worker_metrics_endpoint_serves_its_nodes_the_process_and_the_sdk(
    metrics_worker: MetricsWorker,
) -> None:
    tasks = metrics_worker.tasks
    task = await tasks.start("w")
    await tasks.reaches(task["task_id"], "FINISHED")

    names, samples = await metrics_worker.scrape()

    node = tasks.node("a")
    assert ("task_scheduler_step_duration_seconds_count", (("node", node),)) in samples
    assert ("task_scheduler_step_wait_seconds_count", (("node", node),)) in samples
    assert ("task_scheduler_driver_failures_total", (("node", node),)) in samples
    assert {"task_scheduler_ledger_call_duration_seconds", "process_cpu_seconds"} <= names
    sdk = {name for name in names if name.startswith("temporal_")}
    assert {"temporal_request", "temporal_activity_execution_latency", "temporal_workflow_completed"} <= sdk
    completed = [
        v
        for (name, labels), v in samples.items()
        # The SDK's counters have no _total suffix; the parser adds it to their samples.
        if name == "temporal_workflow_completed_total" and ("workflow_type", "TaskWorkflow") in labels
    ]
    assert sum(completed) >= 1


async def test_worker_metrics_count_each_step_per_node_and_its_ledger_round_trips(
    metrics_worker: MetricsWorker,
) -> None:
    tasks = metrics_worker.tasks
    for _ in range(2):
        task = await tasks.start("w")
        await tasks.reaches(task["task_id"], "FINISHED")

    _, samples = await metrics_worker.scrape()

    for short in ("a", "b"):
        node = tasks.node(short)
        assert samples[("task_scheduler_step_duration_seconds_count", (("node", node),))] == 2
        assert samples[("task_scheduler_step_wait_seconds_count", (("node", node),))] == 2
        assert samples[("task_scheduler_driver_failures_total", (("node", node),))] == 0
    assert samples[("task_scheduler_ledger_call_duration_seconds_count", (("kind", "begin_use"),))] == 4
