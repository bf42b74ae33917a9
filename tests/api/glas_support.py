"""An app of our own with the seed's routes, on a task queue of its own (its LabWorkflow, whose stop and
start would otherwise reach the session's tasks), a worker hosting a lab of test nodes, and a client
holding the token the seed's `/token/{identifier}` gives."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from api_support import bearer, lab_fixtures, serving, wait_for
from temporalio.client import Client, WorkflowExecutionStatus

from task_scheduler.api.app import create_app
from task_scheduler.glas.app import install_seed_api
from task_scheduler.settings import Settings
from task_scheduler.worker import LabWorker, WorkerOptions

SEED_WORKFLOWS: dict[str, list[Any]] = {
    "pair": ["a", "b"],
    "failing": [{"node": "f", "args": {"fail": True}}, "g"],
    "held": ["h", "i"],
}


@dataclass
class SeedApi:
    url: str
    http: httpx.AsyncClient  # with the token of GET /token/{identifier}
    lab: Any
    client: Client
    started: list[str] = field(default_factory=list)

    def workflow(self, short: str) -> str:
        return str(self.lab.workflow(short))

    def node(self, short: str) -> str:
        return str(self.lab.node(short))

    async def add(self, workflow: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"workflow_name": self.workflow(workflow), "args": args}
        response = await self.http.post("/task/", json=body)
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        self.started.append(task["uuid"])
        return task

    async def row(self, task_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/task/{task_id}")
        assert response.status_code == 200, response.text
        return response.json()["task"]  # type: ignore[no-any-return]

    async def reaches(self, task_id: str, state_id: int, timeout_s: float = 20.0) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            row = await self.row(task_id)
            return row if row["task_state_id"] == state_id else None

        what = f"task {task_id} at task_state_id {state_id}"
        return await wait_for(probe, what, timeout_s)  # type: ignore[no-any-return]

    async def cancel_the_rest(self) -> None:
        for task_id in self.started:
            handle = self.client.get_workflow_handle(task_id)
            if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
                await handle.cancel()


@contextlib.asynccontextmanager
async def seed_api(
    folder: Path, settings: Settings, client: Client, workflows: dict[str, list[Any]] | None = None
) -> AsyncIterator[SeedApi]:
    lab = lab_fixtures.write_lab(folder, workflows or SEED_WORKFLOWS)
    settings = settings.model_copy(update={"task_queue": f"seed-{uuid.uuid4()}"})
    options = WorkerOptions(lab=lab.config, task_queue=settings.task_queue, grace_s=1.0)
    async with LabWorker(client, options):
        app = create_app(settings, lab=lab.config, client=client)
        install_seed_api(app)
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            given = (await http.get("/token/lab-script")).json()["token"]
            http.headers.update(bearer(given))
            api = SeedApi(url, http, lab, client)
            try:
                yield api
            finally:
                await api.cancel_the_rest()
