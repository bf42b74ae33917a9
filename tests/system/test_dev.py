"""`task-scheduler dev`, the whole stack in one command: killed with SIGKILL mid-run (its whole process
group), it leaves no Temporal server behind, and started again on its state directory it finishes
every task. Ctrl-C stops it cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dev_stack import DevStack, fast_demo_lab, is_alive, wait_until
from notify_receivers import webhook_receiver

from task_scheduler.devserver import free_port

TASKS = ["full-assay", "full-assay", "prepare-plate", "measure-plate", "quick-check"]


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[DevStack]:
    # A step cut off by the kill is retried as its node allows (with one attempt the task would wait
    # for an operator instead: tests/system/test_crash.py checks that); short heartbeat timeouts let
    # the restarted stack see the loss in seconds rather than the demo lab's 30 s.
    lab = fast_demo_lab(
        tmp_path / "lab",
        speed=0.25,
        heartbeat_timeout_s=3,
        retry={"max_attempts": 3, "initial_interval_s": 0.2},
    )
    stack = DevStack(config=lab, state_dir=tmp_path / "state")
    yield stack
    stack.cleanup()


def _tasks(http: httpx.Client, ids: list[str]) -> dict[str, dict[str, Any]]:
    return {task_id: http.get(f"/tasks/{task_id}").json() for task_id in ids}


def test_dev_killed_with_its_process_group_resumes_every_task_when_started_again(dev_stack: DevStack) -> None:
    dev_stack.start()
    server_pid = dev_stack.temporal_server_pid()
    with dev_stack.client() as http:
        ids = []
        for workflow in TASKS:
            response = http.post(
                "/tasks", json={"workflow_name": workflow, "args": {"plate": f"P-{len(ids)}"}}
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["task_id"])

        def some_steps_done() -> bool:
            steps = [s for task in _tasks(http, ids).values() for s in task["steps"]]
            return sum(s["outcome"] == "SUCCEEDED" for s in steps) >= 2

        wait_until(some_steps_done, "the first steps to succeed", timeout_s=20)
    dev_stack.kill()

    # PR_SET_PDEATHSIG: the server, in a session of its own, is told to stop when `dev` dies.
    wait_until(lambda: not is_alive(server_pid), f"the Temporal server (pid {server_pid}) to exit", 15)
    dev_stack.start()
    with dev_stack.client() as http:
        unfinished = _tasks(http, ids)
        assert any(t["state"] != "FINISHED" for t in unfinished.values()), "the kill came too late"

        def all_finished() -> dict[str, dict[str, Any]] | None:
            # FINISHED is the task's word; COMPLETED Temporal's, a moment later (the task first tells the
            # lab it finished): both, or a loaded machine reads the one before the other.
            tasks = _tasks(http, ids)
            over = all(
                (t["state"], t["temporal_status"]) == ("FINISHED", "COMPLETED") for t in tasks.values()
            )
            return tasks if over else None

        finished = wait_until(
            all_finished, "every task to finish after the restart", timeout_s=45, interval_s=0.5
        )
    for task in finished.values():
        assert {s["outcome"] for s in task["steps"]} == {"SUCCEEDED"}, task

    server_pid = dev_stack.temporal_server_pid()
    assert dev_stack.interrupt() == 0, dev_stack.output()
    assert not is_alive(server_pid), "Ctrl-C left the Temporal server running"


def test_dev_prints_the_notification_of_a_step_that_needs_an_operator(tmp_path: Path) -> None:
    port = free_port()
    lab = fast_demo_lab(tmp_path / "lab", speed=0.1, notify_port=port)
    stack = DevStack(config=lab, state_dir=tmp_path / "state")
    try:
        stack.start()
        assert f"json://127.0.0.1:{port}/notifications (received and printed here)" in stack.output()
        with stack.client() as http:
            body = {"workflow_name": "prepare-plate", "args": {"plate": "P2", "volume_ul": 5000}}
            task_id = http.post("/tasks", json=body).json()["task_id"]
            wait_until(
                lambda: f"[notification] Task {task_id} needs an operator" in stack.output(),
                "the task_error notification printed by dev",
                timeout_s=30,
            )
        assert f"task-scheduler task continue {task_id} --mode next" in stack.output()
        # An expected failure is a line in the terminal, not the SDK's traceback of our own frames.
        said = stack.output()
        assert "step 3 on node dispenser failed with status 2: volume 5000" in said, said
        assert "Traceback" not in said and "Completing activity as failed" not in said, said
        assert stack.interrupt() == 0, stack.output()
    finally:
        stack.cleanup()


def test_dev_leaves_a_taken_webhook_port_to_the_lab_s_own_receiver(tmp_path: Path) -> None:
    """The lab's own receiver already listens on the port of its notifications.json's local webhook
    (or another `dev` does): `dev` says so in one line, runs all the same, and the receiver keeps
    getting the lab's notifications."""
    with webhook_receiver() as receiver:
        lab = fast_demo_lab(tmp_path / "lab", speed=0.1, notify_port=receiver.port)
        stack = DevStack(config=lab, state_dir=tmp_path / "state")
        try:
            stack.start()
            taken = f"(port {receiver.port} is taken: whatever listens there receives them, not printed here)"
            assert taken in stack.output()
            assert "Address already in use" not in stack.output()
            with stack.client() as http:
                body = {"workflow_name": "prepare-plate", "args": {"plate": "P2", "volume_ul": 5000}}
                task_id = http.post("/tasks", json=body).json()["task_id"]
                wait_until(
                    lambda: any(task_id in m.get("message", "") for m in receiver.messages()),
                    "the lab's receiver to get the task's notification",
                    timeout_s=30,
                )
            assert "[notification]" not in stack.output()
            assert stack.interrupt() == 0, stack.output()
        finally:
            stack.cleanup()
