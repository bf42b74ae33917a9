"""Helpers of the API tests: serving an app over real HTTP in this event loop, tokens, polling with a
deadline, and a task starter that cleans up after its test. The lab's nodes are the workflow tests'
(tests/workflows/lab_fixtures.py): a real node class that sleeps, fails on demand or is held."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import ip_network
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import uvicorn
from temporalio.client import Client, WorkflowExecutionStatus

from task_scheduler.api.security import Role, create_token
from task_scheduler.api.serve import server_config
from task_scheduler.devserver import free_port

SECRET = "api-tests-secret-" + "0123456789abcdef" * 3
UI_URL = "http://temporal-ui.test:8233"
LOOPBACK = [ip_network("127.0.0.0/8")]
# Short names of the session lab's workflows; write_lab gives nodes and workflows a unique suffix.
WORKFLOWS: dict[str, list[Any]] = {
    "quick": ["a", "b"],
    "held": ["h1", "h2"],
    "failing": [{"node": "f", "args": {"fail": True}}, "g"],
    "lab": ["l1", "l2"],
    "spare": ["s"],
    "Plate assay (v2) ü": ["s"],
    # Two branches that fail, joined by a wait, then a last step.
    "protocol": [
        {"id": "left", "node": "p1", "args": {"fail": True}},
        {"id": "right", "after": [], "node": "p2", "args": {"fail": True}},
        {"id": "settle", "after": ["left", "right"], "wait_s": 600},
        "p1",
    ],
    # A wait alone (on no node): a task that shows a running wait at once, touching no node.
    "settling": [{"id": "settle", "wait_s": 600}],
}


def _lab_fixtures() -> ModuleType:
    """The workflow tests' node class and lab factory (tests/workflows/lab_fixtures.py), imported under
    the name the lab's nodes.json gives it, so the journal the drivers write is the one tests read."""
    folder = str(Path(__file__).resolve().parents[1] / "workflows")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("lab_fixtures")


lab_fixtures = _lab_fixtures()
TestLab = lab_fixtures.TestLab
JOURNAL = lab_fixtures.JOURNAL


ServeApp = Callable[..., Awaitable[str]]
MakeClient = Callable[..., httpx.AsyncClient]


def token(role: str, name: str | None = None, secret: str = SECRET, ttl_s: float = 3600) -> str:
    return create_token(secret, name or f"test-{role}", Role[role], ttl_s)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@contextlib.asynccontextmanager
async def serving(app: Any, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve `app` with uvicorn in this event loop on a free port, configured as the CLI serves it
    (`server_config`: which proxies are trusted); yield its base URL."""
    port = free_port()
    config = server_config(app, host, port, log_config=None, lifespan="off", ws="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            task.result()  # raises why uvicorn stopped
            raise RuntimeError("uvicorn stopped before it started")
        if time.monotonic() > deadline:
            raise TimeoutError(f"uvicorn did not start on {host}:{port}")
        await asyncio.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


async def wait_for(
    probe: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 20.0, interval_s: float = 0.05
) -> Any:
    """Poll `probe` until it returns something truthy; fail with the last value after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


@dataclass
class Tasks:
    """Start tasks through the API and read them back; what a test leaves running is cleaned up."""

    http: httpx.AsyncClient
    lab: Any
    client: Client
    started: list[str] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)

    def workflow(self, short: str) -> str:
        return self.lab.workflow(short)

    def node(self, short: str) -> str:
        return self.lab.node(short)

    def hold(self) -> str:
        """A hold: a step given args {"hold": name} runs until `release(name)`."""
        name = JOURNAL.hold(f"hold-{uuid.uuid4().hex[:8]}")
        self.holds.append(name)
        return name

    def release(self, name: str) -> None:
        JOURNAL.release(name)

    async def start(self, workflow: str, args: dict[str, Any] | None = None, **body: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/tasks", json={"workflow_name": self.workflow(workflow), "args": args or {}, **body}
        )
        assert response.status_code == 201, response.text
        task: dict[str, Any] = response.json()
        self.started.append(task["task_id"])
        return task

    async def show(self, task_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def reaches(self, task_id: str, state: str, timeout_s: float = 20.0) -> dict[str, Any]:
        # The workflow sets its final state a moment before Temporal records it closed (with its result).
        closed = {"FINISHED": "COMPLETED", "CANCELLED": "CANCELED"}.get(state, "RUNNING")

        seen: dict[str, Any] = {}

        async def probe() -> dict[str, Any] | None:
            seen.update(await self.show(task_id))
            return seen if seen["state"] == state and seen["temporal_status"] == closed else None

        try:
            return await wait_for(probe, f"task {task_id} in {state}", timeout_s)  # type: ignore[no-any-return]
        except AssertionError as exc:
            node = seen.get("current_node")
            ledger = (await self.http.get(f"/nodes/{node}")).json() if node else None
            raise AssertionError(f"{exc}; last seen: {seen}; its node: {ledger}") from None  # type: ignore[no-any-return]

    async def step_running(self, task_id: str, index: int = 0) -> dict[str, Any]:
        """Wait until the driver of step `index` runs (the step holds its node)."""

        async def probe() -> dict[str, Any] | None:
            task = await self.show(task_id)
            node = task["steps"][index]["node"]
            return task if JOURNAL.started(node, task_id) else None

        return await wait_for(probe, f"step {index + 1} of {task_id} running")  # type: ignore[no-any-return]

    async def cleanup(self) -> None:
        for name in self.holds:
            JOURNAL.release(name)
        for task_id in self.started:
            handle = self.client.get_workflow_handle(task_id)
            if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
                await handle.cancel()

        async def all_closed() -> bool:
            for task_id in self.started:
                description = await self.client.get_workflow_handle(task_id).describe()
                if description.status is WorkflowExecutionStatus.RUNNING:
                    return False
            return True

        await wait_for(all_closed, "the test's tasks to close")
        await self.restart_failed_nodes()

    async def restart_failed_nodes(self) -> None:
        """A failed step leaves its node in ERROR until an operator restarts it (a cancelled task does
        not): restart them, so the next test finds every node available."""
        failed = [n["id"] for n in (await self.http.get("/nodes")).json() if n["state"] == "ERROR"]
        for node_id in failed:
            response = await self.http.post(f"/nodes/{node_id}/restart")
            assert response.status_code == 200, response.text

        async def available() -> bool:
            nodes = (await self.http.get("/nodes")).json()
            return all(n["state"] == "AVAILABLE" for n in nodes if n["id"] in failed)

        await wait_for(available, f"nodes {failed} restarted")
