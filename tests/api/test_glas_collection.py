"""The Postman collection the seed ships (tests/data/GLAS.postman_collection.json), replayed against our
API as Postman would send it: its collection-level pre-request script (a token from
`{{url}}/token/Postman`, kept in `bearer_token`), its bearer auth, its bodies and uploads, its
placeholders filled with a real workflow, task and node. Each request answers as the seed's clients
expect; its Tasks/Continue, which the seed itself refused (a GET on a PATCH route: 405), works here."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from glas_support import SeedApi, seed_api
from temporalio.client import Client

from task_scheduler.settings import Settings

COLLECTION = Path(__file__).resolve().parents[1] / "data" / "GLAS.postman_collection.json"
PLACEHOLDER = re.compile(r"<your-[a-z-]+>")


class Postman:
    """The collection's requests by "Folder/Name", sent the way Postman sends them."""

    def __init__(self, path: Path, url: str) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        self.variables = {v["key"]: v["value"] for v in data["variable"]}
        self.variables["url"] = url
        assert data["auth"]["type"] == "bearer"
        self.requests: dict[str, dict[str, Any]] = {}
        self._collect(data["item"], "")

    def _collect(self, items: list[dict[str, Any]], folder: str) -> None:
        for item in items:
            if "item" in item:
                self._collect(item["item"], f"{folder}{item['name']}/")
            else:
                self.requests[f"{folder}{item['name']}"] = item["request"]

    def placeholders(self) -> set[str]:
        return set(PLACEHOLDER.findall(json.dumps(self.requests)))

    async def send(
        self, http: httpx.AsyncClient, name: str, fill: dict[str, str], uploads: list[bytes] | None = None
    ) -> httpx.Response:
        await self._pre_request(http)
        request = self.requests[name]
        headers = {"Authorization": f"Bearer {self.variables['bearer_token']}"}
        url = self._fill(request["url"]["raw"], fill)
        body = request.get("body") or {}
        if body.get("mode") == "raw":
            content = self._fill(body["raw"], fill).encode()
            headers["Content-Type"] = "application/json"
            return await http.request(request["method"], url, content=content, headers=headers)
        if body.get("mode") == "formdata":
            fields = [entry["key"] for entry in body["formdata"]]
            assert uploads is not None and len(uploads) == len(fields)
            files = [
                (key, (f"upload-{i}.json", data))
                for i, (key, data) in enumerate(zip(fields, uploads, strict=True))
            ]
            return await http.request(request["method"], url, files=files, headers=headers)
        return await http.request(request["method"], url, headers=headers)

    async def _pre_request(self, http: httpx.AsyncClient) -> None:
        """The collection's pre-request script: a token, fetched once while `bearer_token` is ""."""
        if self.variables["bearer_token"] == "":
            answer = await http.get(f"{self.variables['url']}/token/Postman")
            self.variables["bearer_token"] = answer.json()["token"]

    def _fill(self, text: str, fill: dict[str, str]) -> str:
        text = re.sub(r"\{\{(\w+)\}\}", lambda m: self.variables[m.group(1)], text)
        return PLACEHOLDER.sub(lambda m: fill[m.group(0)], text)


@pytest.fixture
async def seed(tmp_path: Path, api_settings: Settings, temporal_client: Client) -> AsyncIterator[SeedApi]:
    async with seed_api(tmp_path / "lab", api_settings, temporal_client) as api:
        yield api


async def test_the_seeds_collection_replayed_gets_the_answers_its_users_expect(seed: SeedApi) -> None:
    postman = Postman(COLLECTION, seed.url)
    assert postman.placeholders() == {"<your-workflow-name>", "<your-task-uuid>", "<your-node-id>"}
    fill = {"<your-workflow-name>": seed.workflow("failing"), "<your-node-id>": seed.node("f")}
    uploads = [seed.lab.nodes_file.read_bytes(), seed.lab.workflows_file.read_bytes()]
    http = httpx.AsyncClient(timeout=30)  # no token of its own: the collection's script fetches one
    answers: list[tuple[str, int]] = []

    async def send(name: str, files: list[bytes] | None = None) -> httpx.Response:
        response = await postman.send(http, name, fill, files)
        answers.append((name, response.status_code))
        return response

    async with http:
        await send("Orchestrator/Status")
        added = await send("Tasks/Add")
        fill["<your-task-uuid>"] = added.json()["uuid"]
        seed.started.append(added.json()["uuid"])
        await seed.reaches(fill["<your-task-uuid>"], 5)  # its first step fails on purpose
        running = await send("Tasks/Running")
        got = await send("Tasks/Get")
        await send("Nodes/Restart")
        await send("Tasks/Continue")
        await seed.reaches(fill["<your-task-uuid>"], 4)
        await send("Orchestrator/Stop")
        stopped = (await send("Orchestrator/Status")).status_code
        refused = await send("Tasks/Add")
        await send("Orchestrator/Start")
        reloaded = await send("Config/Reload", uploads)

    assert {name for name, _ in answers} == set(postman.requests)  # every request was sent
    assert answers == [
        ("Orchestrator/Status", 204),
        ("Tasks/Add", 200),
        ("Tasks/Running", 200),
        ("Tasks/Get", 200),
        ("Nodes/Restart", 200),
        ("Tasks/Continue", 200),  # a GET, as the collection sends it (the seed answered 405)
        ("Orchestrator/Stop", 204),
        ("Orchestrator/Status", 410),
        ("Tasks/Add", 418),
        ("Orchestrator/Start", 204),
        ("Config/Reload", 200),
    ]
    assert added.status_code == 200 and added.json()["args"] is None
    assert [t["uuid"] for t in running.json()] == [fill["<your-task-uuid>"]]
    assert got.json()["task"]["task_state_id"] == 5
    assert (stopped, refused.json()) == (410, {})
    assert reloaded.json() == {"loaded_workflows": 3, "loaded_nodes": 6}
