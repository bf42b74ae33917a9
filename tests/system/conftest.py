"""Crash-test fixtures: a lab in a temporary folder whose nodes log every driver start and end, and
`task-scheduler worker` subprocesses that tests SIGKILL (each stopped by its own pid at teardown)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crash_lab import CRASH_NODES, WORKER_BINARY, CrashLab, MakeLab, StartWorker, WorkerProcess, crash_node
from lab_page import Offline, offline_browser
from reliability import ApiProcess, Process

from task_scheduler import LabConfig, NodeConfig, WorkflowConfig


@pytest.fixture
def make_lab(tmp_path: Path) -> MakeLab:
    """`make_lab(nodes={"a": {...extensions}}, workflows={"name": ["a", ...]})`: node ids get a unique
    suffix (NodeWorkflow ids `node-<id>` are shared by every test on the session's server)."""

    def make(nodes: dict[str, dict[str, Any]], workflows: dict[str, list[str]]) -> CrashLab:
        suffix = uuid.uuid4().hex[:8]
        log = tmp_path / "drivers.log"
        ids = {short: f"{short}-{suffix}" for short in nodes}
        node_dicts = [crash_node(ids[short], log, ext) for short, ext in nodes.items()]
        workflow_dicts = [{"name": n, "steps": [ids[s] for s in steps]} for n, steps in workflows.items()]
        (tmp_path / "crash_nodes.py").write_text(CRASH_NODES, encoding="utf-8")
        nodes_json = {"modules": ["crash_nodes.py"], "nodes": node_dicts}
        (tmp_path / "nodes.json").write_text(json.dumps(nodes_json, indent=2), encoding="utf-8")
        (tmp_path / "workflows.json").write_text(json.dumps({"workflows": workflow_dicts}), encoding="utf-8")
        # The test process never imports the driver module: the spec needs no node class.
        lab = LabConfig(
            nodes=[NodeConfig.model_validate(n) for n in node_dicts],
            workflows=[WorkflowConfig.model_validate(w) for w in workflow_dicts],
        )
        return CrashLab(folder=tmp_path, lab=lab, log=log)

    return make


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """`start_worker(lab, address, task_queue, *options)`: a `task-scheduler worker` subprocess in its own
    session."""
    workers: list[WorkerProcess] = []

    def start(lab: CrashLab, address: str, task_queue: str, *options: str) -> WorkerProcess:
        output = tmp_path / f"worker-{len(workers)}.log"
        command = [
            str(WORKER_BINARY),
            "worker",
            *["-n", str(lab.nodes_file), "-w", str(lab.workflows_file)],
            *["--address", address, "--task-queue", task_queue],
            *options,
        ]
        with output.open("wb") as sink:
            process = subprocess.Popen(
                command,
                cwd=lab.folder,  # no stray .env of the repository is read
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(process, output)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.kill()


@pytest.fixture
def owned() -> Iterator[list[Process | ApiProcess]]:
    """The test's subprocesses: each stopped by its own pid at teardown."""
    processes: list[Process | ApiProcess] = []
    yield processes
    for process in processes:
        process.kill()


@pytest.fixture
def offline() -> Iterator[Offline]:
    """A headless Chromium that reaches nothing but this machine (the lab page's tests)."""
    with offline_browser() as browser:
        yield browser
