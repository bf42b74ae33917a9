"""GET /stats over HTTP, with real tasks on the session's dev server and worker: node figures from the
ledgers, task figures from visibility."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from api_support import ServeApp, Tasks, bearer, token, wait_for
from temporalio.client import Client

from task_scheduler.engine.config import NodeConfig

OUTCOMES = {"FINISHED", "CANCELLED", "ERROR", "ACTIVE", "PAUSED", "PENDING"}


async def read_stats(viewer: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await viewer.get("/stats", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def by_node(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["node"]: n for n in stats["nodes"]}


async def test_stats_count_each_nodes_calls_and_each_workflows_tasks(
    tasks: Tasks, viewer: httpx.AsyncClient
) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    before = by_node(await read_stats(viewer))  # the last 7 days: what earlier tests did too
    quick = [(await tasks.start("quick"))["task_id"] for _ in range(2)]
    failing = (await tasks.start("failing"))["task_id"]
    for task_id in quick:
        await tasks.reaches(task_id, "FINISHED")
    await tasks.reaches(failing, "ERROR")

    async def counted() -> dict[str, Any] | None:
        stats = await read_stats(viewer, since=since)
        return stats if sum(w["tasks"] for w in stats["tasks_per_week"]) == 3 else None

    async def released() -> bool:
        # A use that succeeded is recorded as ended within about a second of its step's return.
        nodes = [(await viewer.get(f"/nodes/{tasks.node(short)}")).json() for short in ("a", "b")]
        return all(node["holder"] is None for node in nodes)

    stats = await wait_for(counted, "the three tasks counted")
    await wait_for(released, "nodes a and b released")
    after = by_node(await read_stats(viewer))

    def added(short: str, figure: str) -> int:
        node = tasks.node(short)
        return after[node][figure] - before[node][figure]  # type: ignore[no-any-return]

    assert [added("a", f) for f in ("calls", "successes", "failures")] == [2, 2, 0]
    assert [added("b", f) for f in ("calls", "successes", "failures")] == [2, 2, 0]
    assert [added("f", f) for f in ("calls", "successes", "failures")] == [1, 0, 1]
    assert added("g", "calls") == 0  # the failed step stopped its task before g
    a = after[tasks.node("a")]
    assert a["duration_s"]["min"] <= a["duration_s"]["p95"] <= a["duration_s"]["max"]
    assert a["waited_s"]["total"] >= 0 and a["note"] is None
    assert stats["resolution"] == "hour"
    workflows = {w["workflow"]: w for w in stats["workflows"]}
    assert set(workflows[tasks.workflow("quick")]["outcomes"]) == OUTCOMES
    assert workflows[tasks.workflow("quick")]["tasks"] == 2
    assert workflows[tasks.workflow("quick")]["outcomes"]["FINISHED"] == 2
    assert workflows[tasks.workflow("failing")]["tasks"] == 1
    assert workflows[tasks.workflow("failing")]["outcomes"]["ERROR"] == 1
    assert workflows[tasks.workflow("spare")]["tasks"] == 0
    year, week, _ = datetime.now(UTC).isocalendar()
    assert stats["tasks_per_week"][-1]["week"] == f"{year}-W{week:02d}"
    assert stats["tasks_per_week"][-1]["tasks"] == 3


async def test_stats_of_an_older_window_are_daily_and_weekly(viewer: httpx.AsyncClient) -> None:
    stats = await read_stats(viewer, since="60d")

    assert stats["resolution"] == "day"
    assert stats["nodes_since"].endswith("T00:00:00Z")
    assert 9 <= len(stats["tasks_per_week"]) <= 10
    mondays = [datetime.fromisoformat(w["start"]) for w in stats["tasks_per_week"]]
    assert all(m.weekday() == 0 for m in mondays)
    assert stats["notes"] == []


async def test_stats_name_a_node_without_a_ledger_with_zero_calls(
    serve_app: ServeApp, api_lab: Any, temporal_client: Client
) -> None:
    ghost = NodeConfig(id=f"ghost-{uuid.uuid4().hex[:8]}", name="Ghost", type="none")
    lab = api_lab.config.model_copy(update={"nodes": [*api_lab.config.nodes, ghost]})
    url = await serve_app(lab=lab, client=temporal_client)

    async with httpx.AsyncClient(base_url=url, headers=bearer(token("viewer"))) as viewer:
        stats = await read_stats(viewer, since="1h")

    entry = by_node(stats)[ghost.id]
    assert entry["calls"] == 0
    assert entry["success_rate"] is None
    assert entry["note"] == "no ledger yet: no worker has hosted this node"
