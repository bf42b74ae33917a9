"""Tasks over HTTP: start, list, show, pause, continue, cancel, wait; every error status."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from api_support import JOURNAL, UI_URL, Tasks, wait_for

from task_scheduler.devserver import DevServer


async def test_start_task_returns_201_and_the_finished_task_shows_steps_and_result(
    tasks: Tasks, viewer: httpx.AsyncClient
) -> None:
    started = await tasks.start("quick", {"plate": "P-1"}, priority=5)

    assert started["workflow_name"] == tasks.workflow("quick")
    assert started["state"] == "PENDING"
    assert started["args"] == {"plate": "P-1"}
    assert started["priority"] == 5
    # The answer counts the steps it lists.
    assert [s["node"] for s in started["steps"]] == [tasks.node("a"), tasks.node("b")]
    assert (started["steps_total"], started["steps_offset"]) == (2, 0)
    task_id = started["task_id"]
    waited = (await viewer.get(f"/tasks/{task_id}/wait", params={"timeout_s": 20})).json()
    assert waited["state"] == "FINISHED"

    task = (await viewer.get(f"/tasks/{task_id}")).json()
    a, b = tasks.node("a"), tasks.node("b")
    assert task["state"] == "FINISHED"
    assert task["temporal_status"] == "COMPLETED"
    assert task["live"] is True
    assert task["current_step"] is None
    assert task["args"] == {"plate": "P-1"}
    assert [(s["node"], s["outcome"], s["status"]) for s in task["steps"]] == [
        (a, "SUCCEEDED", 0),
        (b, "SUCCEEDED", 0),
    ]
    assert task["result"] == [{"node": a, "seen": 0}, {"node": b, "seen": 1}]
    assert task["reason"] is None
    assert task["ui_url"] == f"{UI_URL}/namespaces/default/workflows/{task_id}"
    logs = (await viewer.get(f"/tasks/{task_id}/logs")).json()
    assert [s["node"] for s in logs] == [a, b]
    assert (task["steps_total"], task["steps_offset"]) == (2, 0)
    page = (await viewer.get(f"/tasks/{task_id}/steps", params={"offset": 1, "limit": 5})).json()
    assert (page["total"], page["offset"], [s["node"] for s in page["steps"]]) == (2, 1, [b])
    assert page["steps"][0]["output"] == {"node": b, "seen": 1}
    assert f"{a} runs for {task_id}" in logs[0]["logs"][0]


async def test_task_of_a_workflow_whose_name_has_spaces_gets_an_id_every_route_accepts(
    tasks: Tasks, operator: httpx.AsyncClient
) -> None:
    started = await tasks.start("Plate assay (v2) ü")

    task_id = started["task_id"]
    assert task_id.startswith("Plate-assay-v2-")
    finished = await tasks.reaches(task_id, "FINISHED")
    assert finished["workflow_name"] == tasks.workflow("Plate assay (v2) ü")
    assert (await operator.post(f"/tasks/{task_id}/pause")).status_code == 409


async def test_start_task_with_own_id_refuses_the_same_id_while_running_and_after_it_finished(
    tasks: Tasks, operator: httpx.AsyncClient
) -> None:
    hold = tasks.hold()
    running = await tasks.start("held", {"hold": hold}, id=f"mine-{hold}")
    assert running["task_id"] == f"mine-{hold}"
    again = await operator.post(
        "/tasks", json={"workflow_name": tasks.workflow("held"), "id": f"mine-{hold}"}
    )
    assert again.status_code == 409
    assert f"mine-{hold}" in again.json()["detail"]

    finished = await tasks.start("quick", id=f"done-{hold}")
    await tasks.reaches(finished["task_id"], "FINISHED")
    # A client that retries its start after the task finished must not run the lab's steps twice.
    retried = await operator.post(
        "/tasks", json={"workflow_name": tasks.workflow("quick"), "id": f"done-{hold}"}
    )
    assert retried.status_code == 409, retried.text
    assert f"done-{hold}" in retried.json()["detail"]


async def test_start_task_of_unknown_workflow_is_404_naming_the_known_ones(
    tasks: Tasks, operator: httpx.AsyncClient
) -> None:
    response = await operator.post("/tasks", json={"workflow_name": "no-such-workflow"})

    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "no-such-workflow" in detail
    assert tasks.workflow("quick") in detail


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"workflow_name": ""},
        {"workflow_name": 5},
        {"workflow_name": "WF", "args": [1, 2]},
        {"workflow_name": "WF", "args": "plate"},
        {"workflow_name": "WF", "priority": "high"},
        {"workflow_name": "WF", "priority": 10**9},
        {"workflow_name": "WF", "id": "has spaces"},
        {"workflow_name": "WF", "id": "x" * 300},
        [],
        "not an object",
    ],
    ids=repr,
)
async def test_start_task_with_bad_body_is_422(tasks: Tasks, operator: httpx.AsyncClient, body: Any) -> None:
    if isinstance(body, dict) and body.get("workflow_name") == "WF":
        body = {**body, "workflow_name": tasks.workflow("quick")}

    response = await operator.post("/tasks", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"]


async def test_start_task_with_invalid_json_is_422(operator: httpx.AsyncClient) -> None:
    response = await operator.post(
        "/tasks", content=b'{"workflow_name": ', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422


async def _listed(http: httpx.AsyncClient, **filters: Any) -> set[str]:
    response = await http.get("/tasks", params=filters)
    assert response.status_code == 200, response.text
    return {t["task_id"] for t in response.json()["tasks"]}


async def test_list_tasks_filters_by_state_workflow_and_node(tasks: Tasks, viewer: httpx.AsyncClient) -> None:
    hold = tasks.hold()
    done = (await tasks.start("quick"))["task_id"]
    failed = (await tasks.start("failing"))["task_id"]
    held = (await tasks.start("held", {"hold": hold}))["task_id"]
    await tasks.reaches(done, "FINISHED")
    await tasks.reaches(failed, "ERROR")
    await tasks.step_running(held)
    mine = {done, failed, held}

    async def listings() -> dict[str, set[str]] | None:
        found = {
            "FINISHED": await _listed(viewer, state="FINISHED"),
            "ERROR": await _listed(viewer, state="ERROR"),
            "ACTIVE": await _listed(viewer, state="ACTIVE"),
            "quick": await _listed(viewer, workflow_name=tasks.workflow("quick")),
            "f": await _listed(viewer, node=tasks.node("f")),
            "h1": await _listed(viewer, node=tasks.node("h1"), state="ACTIVE"),
        }
        expected = {
            "FINISHED": {done},
            "ERROR": {failed},
            "ACTIVE": {held},
            "quick": {done},
            "f": {failed},
            "h1": {held},
        }
        # Visibility lags the workflows a little: wait until every listing agrees.
        return found if all(found[k] & mine == v for k, v in expected.items()) else None

    await wait_for(listings, "the listings to agree with the tasks' states")
    everything = await _listed(viewer)
    assert mine <= everything


async def test_a_task_cancelled_at_a_node_leaves_that_node_s_listing(
    tasks: Tasks, viewer: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    """`--node arm` (CurrentNode="arm") lists the tasks at the arm, not those that were cancelled there."""
    held = (await tasks.start("held", {"hold": tasks.hold()}))["task_id"]
    await tasks.step_running(held)
    h1 = tasks.node("h1")

    async def at_h1() -> bool:
        return held in await _listed(viewer, node=h1)

    await wait_for(at_h1, "the running task to be listed at its node")
    assert (await operator.post(f"/tasks/{held}/cancel", json={"reason": "test"})).status_code == 200
    await tasks.reaches(held, "CANCELLED")

    async def moved() -> bool:
        cancelled = held in await _listed(viewer, state="CANCELLED")
        return cancelled and held not in await _listed(viewer, node=h1)

    await wait_for(moved, "the cancelled task to leave its node's listing")


@pytest.mark.parametrize("params", [{"state": "SLEEPING"}, {"page_size": 0}, {"page_size": 5000}])
async def test_list_tasks_with_bad_filter_is_422(viewer: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await viewer.get("/tasks", params=params)

    assert response.status_code == 422, response.text


@pytest.mark.parametrize("value", ['quo"te', "back\\slash"])
async def test_list_tasks_with_quote_in_filter_is_422(viewer: httpx.AsyncClient, value: str) -> None:
    response = await viewer.get("/tasks", params={"workflow_name": value})

    assert response.status_code == 422, response.text


async def test_list_tasks_pages_through_every_task(tasks: Tasks, viewer: httpx.AsyncClient) -> None:
    ids = {(await tasks.start("quick"))["task_id"] for _ in range(3)}
    for task_id in ids:
        await tasks.reaches(task_id, "FINISHED")
    name = tasks.workflow("quick")
    await wait_for(
        lambda: _contains(viewer, ids, workflow_name=name, state="FINISHED"), "the tasks in visibility"
    )

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params = {"workflow_name": name, "page_size": 2, **({"page_token": token} if token else {})}
        page = (await viewer.get("/tasks", params=params)).json()
        assert len(page["tasks"]) <= 2
        seen += [t["task_id"] for t in page["tasks"]]
        pages += 1
        token = page["next_page_token"]
        if not token:
            break
    assert pages >= 2
    assert len(seen) == len(set(seen))
    assert ids <= set(seen)
    first = (await viewer.get("/tasks", params={"workflow_name": name, "page_size": 1})).json()
    other_listing = await viewer.get(
        "/tasks", params={"page_size": 1, "page_token": first["next_page_token"]}
    )
    assert other_listing.status_code == 422
    assert "same filters" in other_listing.json()["detail"]


async def _contains(http: httpx.AsyncClient, ids: set[str], **filters: Any) -> bool:
    return ids <= await _listed(http, **filters)


@pytest.mark.parametrize("page_token", ["xyz", "abc", "abcd", "00"])
async def test_list_tasks_with_bad_page_token_is_422(viewer: httpx.AsyncClient, page_token: str) -> None:
    response = await viewer.get("/tasks", params={"page_token": page_token})

    assert response.status_code == 422, response.text


async def test_show_unknown_task_is_404(viewer: httpx.AsyncClient, operator: httpx.AsyncClient) -> None:
    for response in (
        await viewer.get("/tasks/no-such-task"),
        await viewer.get("/tasks/no-such-task/wait", params={"timeout_s": 1}),
        await operator.post("/tasks/no-such-task/pause"),
        await operator.post("/tasks/no-such-task/continue", json={"mode": "retry"}),
        await operator.post("/tasks/no-such-task/cancel"),
    ):
        assert response.status_code == 404, response.text
        assert "no-such-task" in response.json()["detail"]


async def test_show_task_with_malformed_id_is_422(viewer: httpx.AsyncClient) -> None:
    response = await viewer.get("/tasks/bad id!")

    assert response.status_code == 422


async def test_failed_step_stops_the_task_with_its_reason_and_continue_next_finishes_it(
    tasks: Tasks, operator: httpx.AsyncClient, temporal_server: DevServer
) -> None:
    task_id = (await tasks.start("failing", {"plate": "P-7"}))["task_id"]
    failed = await tasks.reaches(task_id, "ERROR")
    # In the Temporal UI and the `temporal` CLI: what the task is (describe: its summary), and why it
    # waits (metadata: its current details; CLI 1.9.1's describe does not show those).
    described = await temporal_cli(temporal_server, "describe", task_id)
    assert f"{tasks.workflow('failing')} (2 steps) plate=P-7" in described
    details = await temporal_cli(temporal_server, "metadata", task_id)
    assert "ERROR" in details and f"task-scheduler task continue {task_id}" in details
    assert f"{tasks.node('f')} failed on purpose" in details

    f, g = tasks.node("f"), tasks.node("g")
    assert failed["current_step"] == 0
    assert failed["current_node"] == f
    assert f"{f} failed on purpose" in failed["reason"]
    assert failed["steps"][0]["outcome"] == "FAILED"
    assert failed["steps"][0]["status"] == 1
    assert failed["result"] is None

    response = await operator.post(f"/tasks/{task_id}/continue", json={"mode": "next"})
    assert response.status_code == 200, response.text
    done = await tasks.reaches(task_id, "FINISHED")
    assert [s["outcome"] for s in done["steps"]] == ["SKIPPED", "SUCCEEDED"]
    (decision,) = done["decisions"]
    assert (decision["command"], decision["mode"], decision["by"], decision["step"]) == (
        "continue",
        "next",
        "test-operator",
        0,
    )
    assert decision["state"] == "ERROR" and decision["at"]
    assert done["result"] == [{}, {"node": g, "seen": 0}]  # the skipped step before it had no output
    assert done["reason"] is None


async def test_continue_retry_runs_the_failed_step_again(tasks: Tasks, operator: httpx.AsyncClient) -> None:
    task_id = (await tasks.start("failing"))["task_id"]
    await tasks.reaches(task_id, "ERROR")

    response = await operator.post(f"/tasks/{task_id}/continue")  # no body: retry

    assert response.status_code == 200, response.text

    async def failed_twice() -> dict[str, Any] | None:
        task = await tasks.show(task_id)
        return task if task["state"] == "ERROR" and task["steps"][0]["runs"] == 2 else None

    await wait_for(failed_twice, "the retried step to fail again")
    assert len(JOURNAL.runs(tasks.node("f"), task_id)) == 2


async def test_a_retried_step_waits_for_its_node_restarted_for_it_not_for_a_node_held_by_itself(
    tasks: Tasks, operator: httpx.AsyncClient
) -> None:
    task_id = (await tasks.start("failing"))["task_id"]
    await tasks.reaches(task_id, "ERROR")
    f = tasks.node("f")
    JOURNAL.hold_restarts(f)
    try:
        response = await operator.post(f"/tasks/{task_id}/continue", json={"mode": "retry"})
        assert response.status_code == 200, response.text

        async def waiting() -> dict[str, Any] | None:
            task = await tasks.show(task_id)
            return task if task["steps"][0]["outcome"] == "WAITING" else None

        task = await wait_for(waiting, "the retried step waiting for its node's restart")
    finally:
        JOURNAL.release_restarts(f)

    assert task["reason"] == (
        f"waiting for node {f}: it is being restarted for this step's retry (the operator's continue), "
        "then kept for it"
    )
    assert (await tasks.reaches(task_id, "ERROR"))["steps"][0]["runs"] == 2  # it ran again (and failed)


async def test_pause_takes_effect_after_the_current_step_and_continue_resumes(
    tasks: Tasks, operator: httpx.AsyncClient
) -> None:
    hold = tasks.hold()
    task_id = (await tasks.start("held", {"hold": hold}))["task_id"]
    await tasks.step_running(task_id)

    paused = await operator.post(f"/tasks/{task_id}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["pause_requested"] is True
    assert paused.json()["state"] == "ACTIVE"
    twice = await operator.post(f"/tasks/{task_id}/pause")
    assert twice.status_code == 409
    assert "already requested" in twice.json()["detail"]

    tasks.release(hold)
    task = await tasks.reaches(task_id, "PAUSED")
    assert [s["outcome"] for s in task["steps"]] == ["SUCCEEDED", "PENDING"]
    again = await operator.post(f"/tasks/{task_id}/pause")
    assert again.status_code == 409
    assert "PAUSED" in again.json()["detail"]

    resumed = await operator.post(f"/tasks/{task_id}/continue", json={"mode": "retry"})
    assert resumed.status_code == 200, resumed.text
    await tasks.reaches(task_id, "FINISHED")


async def test_continue_an_active_task_is_409_naming_its_state(
    tasks: Tasks, operator: httpx.AsyncClient
) -> None:
    hold = tasks.hold()
    task_id = (await tasks.start("held", {"hold": hold}))["task_id"]
    await tasks.step_running(task_id)

    response = await operator.post(f"/tasks/{task_id}/continue", json={"mode": "retry"})

    assert response.status_code == 409
    assert "ACTIVE" in response.json()["detail"]


async def test_commands_on_a_finished_task_are_409_naming_its_state(
    tasks: Tasks, operator: httpx.AsyncClient
) -> None:
    task_id = (await tasks.start("quick"))["task_id"]
    await tasks.reaches(task_id, "FINISHED")

    for command in ("pause", "continue", "cancel"):
        response = await operator.post(f"/tasks/{task_id}/{command}")
        assert response.status_code == 409, (command, response.text)
        assert "FINISHED" in response.json()["detail"], command


async def test_cancel_aborts_the_running_step_and_records_who_and_why(
    tasks: Tasks, operator: httpx.AsyncClient
) -> None:
    hold = tasks.hold()
    task_id = (await tasks.start("held", {"hold": hold}))["task_id"]
    await tasks.step_running(task_id)
    h1 = tasks.node("h1")
    aborts = JOURNAL.aborts[h1]

    response = await operator.post(f"/tasks/{task_id}/cancel", json={"reason": "wrong plate"})

    assert response.status_code == 200, response.text
    # The answer shows the aborted run as it ended: when, who cancelled it, what its driver logged.
    answered = response.json()
    assert answered["state"] == "CANCELLED"
    aborted = answered["steps"][0]
    assert aborted["message"].startswith("cancelled by test-operator after ") and aborted["finished_at"]
    assert any(f"{h1} runs for {task_id}" in line for line in aborted["logs"]), aborted
    task = await tasks.reaches(task_id, "CANCELLED")
    assert task["reason"] == "cancelled by test-operator: wrong plate"
    assert task["temporal_status"] == "CANCELED"
    assert [s["outcome"] for s in task["steps"]] == ["CANCELLED", "PENDING"]
    assert JOURNAL.aborts[h1] == aborts + 1
    again = await operator.post(f"/tasks/{task_id}/cancel")
    assert again.status_code == 409
    assert "CANCELLED" in again.json()["detail"]


async def test_cancel_a_task_in_error_ends_it(tasks: Tasks, operator: httpx.AsyncClient) -> None:
    task_id = (await tasks.start("failing"))["task_id"]
    await tasks.reaches(task_id, "ERROR")

    response = await operator.post(f"/tasks/{task_id}/cancel")

    assert response.status_code == 200, response.text
    task = await tasks.reaches(task_id, "CANCELLED")
    assert task["reason"] == "cancelled by test-operator: no reason given"


async def test_continue_with_bad_mode_is_422(tasks: Tasks, operator: httpx.AsyncClient) -> None:
    task_id = (await tasks.start("failing"))["task_id"]
    await tasks.reaches(task_id, "ERROR")

    response = await operator.post(f"/tasks/{task_id}/continue", json={"mode": "sideways"})

    assert response.status_code == 422
    assert (await tasks.show(task_id))["state"] == "ERROR"


async def test_running_step_shows_since_when_its_driver_runs(tasks: Tasks, viewer: httpx.AsyncClient) -> None:
    hold = tasks.hold()
    task_id = (await tasks.start("held", {"hold": hold}))["task_id"]

    async def started() -> Any:
        task = (await viewer.get(f"/tasks/{task_id}")).json()
        step = task["steps"][0]
        return step if step["outcome"] == "RUNNING" and step["started_at"] else None

    step = await wait_for(started, "the running step's start time")
    assert step["finished_at"] is None
    JOURNAL.release(hold)
    await tasks.reaches(task_id, "FINISHED")


async def temporal_cli(server: DevServer, command_name: str, task_id: str) -> str:
    """`temporal workflow describe|metadata`, as a person would run it."""
    command = [server.binary, "workflow", command_name, "--workflow-id", task_id, "--address", server.address]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    return output.decode()


async def test_two_continues_at_once_one_is_refused_and_the_second_failure_waits_for_a_decision(
    tasks: Tasks, operator: httpx.AsyncClient
) -> None:
    task_id = (await tasks.start("failing"))["task_id"]
    await tasks.reaches(task_id, "ERROR")

    answers = await asyncio.gather(
        operator.post(f"/tasks/{task_id}/continue"), operator.post(f"/tasks/{task_id}/continue")
    )

    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    (refused,) = [a for a in answers if a.status_code == 409]
    assert "continue" in refused.json()["detail"]

    async def failed_twice() -> dict[str, Any] | None:
        task = await tasks.show(task_id)
        return task if task["state"] == "ERROR" and task["steps"][0]["runs"] == 2 else None

    stopped = await wait_for(failed_twice, "the retried step to fail again")
    # The refused continue was not kept for later: the second failure waits for a decision of its own.
    assert [d["command"] for d in stopped["decisions"]] == ["continue"]
    again = await operator.post(f"/tasks/{task_id}/cancel", json={"reason": "enough"})
    assert again.status_code == 200, again.text
    assert len(JOURNAL.runs(tasks.node("f"), task_id)) == 2


async def test_protocol_task_shows_steps_by_id_and_its_continue_names_the_step(
    tasks: Tasks, operator: httpx.AsyncClient
) -> None:
    p1, p2 = tasks.node("p1"), tasks.node("p2")
    started = await tasks.start("protocol")
    assert [(s["id"], s["node"]) for s in started["steps"]] == [
        ("left", p1),
        ("right", p2),
        ("settle", None),
        ("4", p1),
    ]
    task_id = started["task_id"]

    async def outcomes(*expected: str) -> dict[str, Any] | None:
        task = await tasks.show(task_id)
        return task if [s["outcome"] for s in task["steps"]] == list(expected) else None

    failed = await wait_for(lambda: outcomes("FAILED", "FAILED", "PENDING", "PENDING"), "both to fail")
    assert failed["state"] == "ERROR"
    unnamed = await operator.post(f"/tasks/{task_id}/continue", json={"mode": "next"})
    assert unnamed.status_code == 409
    assert "steps left, right failed: name the step this continue is about" in unnamed.json()["detail"]
    unknown = await operator.post(f"/tasks/{task_id}/continue", json={"mode": "next", "step": "middle"})
    assert unknown.status_code == 409
    assert "no step 'middle' in this task; its steps: left, right, settle, 4" in unknown.json()["detail"]

    by_id = await operator.post(f"/tasks/{task_id}/continue", json={"mode": "next", "step": "left"})
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["decisions"][-1]["step"] == 0
    await wait_for(lambda: outcomes("SKIPPED", "FAILED", "PENDING", "PENDING"), "left to be skipped")
    by_number = await operator.post(f"/tasks/{task_id}/continue", json={"mode": "next", "step": "2"})
    assert by_number.status_code == 200, by_number.text
    waiting = await wait_for(lambda: outcomes("SKIPPED", "SKIPPED", "RUNNING", "PENDING"), "the wait")
    assert waiting["state"] == "ACTIVE"
    settle = waiting["steps"][2]
    ends_at, started_at = (datetime.fromisoformat(settle[k]) for k in ("ends_at", "started_at"))
    assert ends_at - started_at == timedelta(seconds=600)

    ended = await operator.post(f"/tasks/{task_id}/continue", json={"mode": "next"})
    assert ended.status_code == 200, ended.text
    finished = await tasks.reaches(task_id, "FINISHED")
    assert [s["outcome"] for s in finished["steps"]] == ["SKIPPED", "SKIPPED", "SKIPPED", "SUCCEEDED"]
    assert finished["steps"][2]["message"].startswith("ended by ")


async def test_one_step_record_by_its_id_or_number_and_a_404_that_names_the_steps(
    tasks: Tasks, viewer: httpx.AsyncClient
) -> None:
    task_id = (await tasks.start("protocol"))["task_id"]

    async def both_failed() -> list[dict[str, Any]] | None:
        steps = (await viewer.get(f"/tasks/{task_id}/steps")).json()["steps"]
        return steps if [s["outcome"] for s in steps[:2]] == ["FAILED", "FAILED"] else None

    steps = await wait_for(both_failed, "both branches to fail")
    right = await viewer.get(f"/tasks/{task_id}/steps/right")
    by_number = await viewer.get(f"/tasks/{task_id}/steps/2")
    last = await viewer.get(f"/tasks/{task_id}/steps/4")  # no id of its own: its number
    unknown = await viewer.get(f"/tasks/{task_id}/steps/middle")
    past_the_end = await viewer.get(f"/tasks/{task_id}/steps/5")
    no_task = await viewer.get("/tasks/no-such-task-0000/steps/right")

    assert right.status_code == 200, right.text
    assert right.json() == steps[1]  # the same record as in the page of steps
    assert (right.json()["id"], right.json()["node"], right.json()["outcome"]) == (
        "right",
        tasks.node("p2"),
        "FAILED",
    )
    assert by_number.json() == steps[1]
    assert (last.json()["id"], last.json()["index"], last.json()["outcome"]) == ("4", 3, "PENDING")
    assert unknown.status_code == past_the_end.status_code == 404
    assert (
        unknown.json()["detail"] == f"no step 'middle' in task {task_id}; its steps: left, right, settle, 4"
    )
    assert "no step '5'" in past_the_end.json()["detail"]
    assert no_task.status_code == 404
