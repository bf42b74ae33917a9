"""Fixtures of the workflow tests: a lab of test nodes per test, and tasks started on it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_fixtures import MakeLab, StartTask, TestLab, kill, unique_id, write_lab
from temporalio.client import Client, WorkflowHandle

from task_scheduler.engine.task_state import TaskResult
from task_scheduler.engine.tasks import make_task_spec
from task_scheduler.workflows.task import TaskWorkflow


@pytest.fixture
def make_lab(tmp_path: Path) -> MakeLab:
    """`make_lab({"wf": ["a", "b"]}, nodes={"a": {"heartbeat_timeout_s": 2}})`: a lab of its own."""
    count = 0

    def make(workflows: dict[str, list[Any]], nodes: dict[str, dict[str, Any]] | None = None) -> TestLab:
        nonlocal count
        count += 1
        return write_lab(tmp_path / f"lab-{count}", workflows, nodes)

    return make


@pytest.fixture
def start_task(temporal_client: Client, task_queue: str) -> StartTask:
    """Start a task of a lab workflow (short name) on the test's task queue."""

    async def start(
        lab: TestLab, workflow: str, args: dict[str, Any] | None = None, priority: int = 0
    ) -> WorkflowHandle[TaskWorkflow, TaskResult]:
        spec = make_task_spec(lab.config, lab.workflow(workflow), args, priority)
        return await temporal_client.start_workflow(
            TaskWorkflow.run, spec, id=unique_id(f"task-{workflow}"), task_queue=task_queue
        )

    return start


@pytest.fixture
def worker_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """`task-scheduler worker` subprocesses the test starts (`lab_fixtures.start_worker`): killed by
    their pid at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        kill(process)
