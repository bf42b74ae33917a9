"""Nodes over HTTP: state, holder, waiting tasks, statistics, hosting worker, restart."""

from __future__ import annotations

from typing import Any

import httpx
from api_support import JOURNAL, Tasks, wait_for


async def _node(http: httpx.AsyncClient, node_id: str) -> dict[str, Any]:
    response = await http.get(f"/nodes/{node_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_list_nodes_shows_every_node_of_the_lab_hosted_and_available(
    api_lab: Any, viewer: httpx.AsyncClient
) -> None:
    async def settled() -> httpx.Response | None:
        # An earlier test's last step may have just succeeded: its use is recorded as ended within
        # about a second, and only then is its node AVAILABLE.
        response = await viewer.get("/nodes")
        return None if any(n["holder"] for n in response.json()) else response

    response = await wait_for(settled, "no node held")

    assert response.status_code == 200
    nodes = {n["id"]: n for n in response.json()}
    assert set(nodes) == set(api_lab.node_ids.values())
    a = nodes[api_lab.node("a")]
    assert (a["name"], a["type"], a["state"], a["hosted"], a["holder"]) == (
        "node a",
        "WorkflowTestNode",
        "AVAILABLE",
        True,
        None,
    )
    assert all(n["hosted"] and n["state"] == "AVAILABLE" for n in nodes.values())


async def test_show_node_gives_its_holder_waiting_tasks_and_statistics(
    tasks: Tasks, viewer: httpx.AsyncClient
) -> None:
    h1 = tasks.node("h1")
    calls_before = (await _node(viewer, h1))["stats"]["calls"]
    hold = tasks.hold()
    first = (await tasks.start("held", {"hold": hold}))["task_id"]
    await tasks.step_running(first)
    second = (await tasks.start("held", {"hold": hold}))["task_id"]

    async def busy() -> dict[str, Any] | None:
        node = await _node(viewer, h1)
        holder = node["holder"]["key"]["task_id"] if node["holder"] else None
        return node if holder == first and node["waiting_tasks"] == [second] else None

    node = await wait_for(busy, f"{first} holding {h1} and {second} waiting")
    assert node["state"] == "IN_USE"
    assert node["hosted"] is True
    assert node["holder"]["key"]["step_index"] == 0

    tasks.release(hold)
    await tasks.reaches(first, "FINISHED")
    await tasks.reaches(second, "FINISHED")

    async def released() -> dict[str, Any] | None:
        node = await _node(viewer, h1)
        return node if node["holder"] is None else None

    # The end of a use that succeeded is recorded within about a second of the step's return.
    node = await wait_for(released, f"{h1} released")
    assert node["state"] == "AVAILABLE"
    assert node["waiting_tasks"] == []
    assert node["stats"]["calls"] == calls_before + 2
    assert node["stats"]["failures"] == 0
    assert node["stats"]["max_wait_s"] > 0


async def test_show_unknown_node_is_404_naming_the_known_ones(
    api_lab: Any, viewer: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    for response in (
        await viewer.get("/nodes/no-such-node"),
        await operator.post("/nodes/no-such-node/restart"),
    ):
        assert response.status_code == 404
        assert "no-such-node" in response.json()["detail"]
        assert api_lab.node("a") in response.json()["detail"]


async def test_restart_node_restarts_its_driver(tasks: Tasks, operator: httpx.AsyncClient) -> None:
    s = tasks.node("s")
    before = await _node(operator, s)
    driver_restarts = JOURNAL.restarts[s]

    response = await operator.post(f"/nodes/{s}/restart")

    assert response.status_code == 200, response.text

    async def restarted() -> dict[str, Any] | None:
        node = await _node(operator, s)
        return node if node["restarts"] == before["restarts"] + 1 and node["state"] == "AVAILABLE" else None

    await wait_for(restarted, f"{s} restarted")
    assert JOURNAL.restarts[s] == driver_restarts + 1


async def test_restart_node_in_use_is_409(tasks: Tasks, operator: httpx.AsyncClient) -> None:
    hold = tasks.hold()
    task_id = (await tasks.start("spare", {"hold": hold}))["task_id"]
    await tasks.step_running(task_id)

    response = await operator.post(f"/nodes/{tasks.node('s')}/restart")

    assert response.status_code == 409
    assert "IN_USE" in response.json()["detail"]


async def test_failed_step_leaves_its_node_in_error_until_a_restart(
    tasks: Tasks, operator: httpx.AsyncClient
) -> None:
    f = tasks.node("f")
    task_id = (await tasks.start("failing"))["task_id"]
    await tasks.reaches(task_id, "ERROR")
    cancelled = await operator.post(f"/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200
    await tasks.reaches(task_id, "CANCELLED")

    node = await _node(operator, f)
    assert node["state"] == "ERROR"
    assert "failed on purpose" in node["reason"]
    assert node["stats"]["failures"] >= 1

    response = await operator.post(f"/nodes/{f}/restart")
    assert response.status_code == 200, response.text

    async def available() -> dict[str, Any] | None:
        node = await _node(operator, f)
        return node if node["state"] == "AVAILABLE" else None

    node = await wait_for(available, f"{f} available again")
    assert node["reason"] is None
