"""`GET /metrics` over real HTTP, on the session's API (its dev server, its worker): the Prometheus text
parses, and its counts agree with what the API lists (tasks by state and workflow, nodes by state);
public but behind the allowlist; bounded in time when Temporal does not answer."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from api_support import MakeClient, ServeApp, Tasks, wait_for
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.service import RPCError

from task_scheduler.engine.contracts import lab_workflow_id
from task_scheduler.engine.states import NodeState, TaskState
from task_scheduler.settings import Settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[set[str], Samples]:
    """The family names, and every sample by (name, sorted labels)."""
    names, samples = set(), {}
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return names, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def scrape(http: httpx.AsyncClient, **headers: str) -> Samples:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)[1]


async def listed(http: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    """Every task GET /tasks lists for `query`, page after page."""
    tasks: list[dict[str, Any]] = []
    params: dict[str, str] = {**query, "page_size": "100"}
    while True:
        page = (await http.get("/tasks", params=params)).json()
        tasks += page["tasks"]
        if not page["next_page_token"]:
            return tasks
        params["page_token"] = page["next_page_token"]


@pytest.fixture
async def tasks_in_each_state(tasks: Tasks) -> dict[str, dict[str, Any]]:
    """Two finished tasks, one stopped by a failed step (ERROR), one running (held on its node)."""
    done = [await tasks.start("quick"), await tasks.start("quick")]
    failed = await tasks.start("failing")
    held = await tasks.start("held", {"hold": tasks.hold()})
    for task in done:
        await tasks.reaches(task["task_id"], TaskState.FINISHED)
    await tasks.step_running(held["task_id"])
    return {
        "finished": done[0],
        "failed": await tasks.reaches(failed["task_id"], TaskState.ERROR),
        "held": await tasks.reaches(held["task_id"], TaskState.ACTIVE),
    }


async def test_metrics_is_public_and_every_source_answers(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/metrics")

    assert response.status_code == 200, response.text
    names, samples = parse(response.text)
    assert {"task_scheduler_tasks", "task_scheduler_nodes", "task_scheduler_node_state"} <= names
    assert {
        "task_scheduler_tasks_waiting_for_operator",
        "task_scheduler_operator_wait_oldest_seconds",
    } <= names
    for source in ("tasks", "operator_waits", "nodes", "notifications"):
        assert value(samples, "task_scheduler_metrics_source_up", source=source) == 1, source


async def test_metrics_tasks_by_state_and_workflow_agree_with_the_task_listing(
    viewer: httpx.AsyncClient, tasks: Tasks, tasks_in_each_state: dict[str, dict[str, Any]], api_lab: Any
) -> None:
    samples = await scrape(viewer)

    for workflow in (w.name for w in api_lab.config.workflows):
        for state in TaskState:
            shown = value(samples, "task_scheduler_tasks", state=state.value, workflow=workflow)
            listing = await listed(viewer, state=state.value, workflow_name=workflow)
            if state not in (TaskState.FINISHED, TaskState.CANCELLED):  # a task not over counts if it runs
                listing = [t for t in listing if t["temporal_status"] == "RUNNING"]
            assert shown == len(listing), (workflow, state)
    assert value(samples, "task_scheduler_tasks", state="FINISHED", workflow=tasks.workflow("quick")) >= 2
    assert value(samples, "task_scheduler_tasks", state="ERROR", workflow=tasks.workflow("failing")) >= 1
    assert value(samples, "task_scheduler_tasks", state="ACTIVE", workflow=tasks.workflow("held")) >= 1


async def test_metrics_tasks_waiting_for_an_operator_and_the_longest_wait(
    viewer: httpx.AsyncClient, tasks: Tasks, tasks_in_each_state: dict[str, dict[str, Any]]
) -> None:
    failed = tasks_in_each_state["failed"]
    failed_at = datetime.fromisoformat(failed["steps"][0]["finished_at"])

    samples = await scrape(viewer)

    in_error = await listed(viewer, state="ERROR")
    waiting = Counter(t["workflow_name"] for t in in_error if t["temporal_status"] == "RUNNING")
    assert (
        value(samples, "task_scheduler_tasks_waiting_for_operator", workflow=tasks.workflow("failing"))
        == (waiting[tasks.workflow("failing")])
    )
    assert value(samples, "task_scheduler_tasks_waiting_for_operator", workflow=tasks.workflow("quick")) == 0
    longest = value(samples, "task_scheduler_operator_wait_oldest_seconds")
    assert longest >= (datetime.now(UTC) - failed_at).total_seconds() - 1.0
    assert longest < 3600


async def test_metrics_nodes_by_state_agree_with_the_node_listing(
    viewer: httpx.AsyncClient, tasks_in_each_state: dict[str, dict[str, Any]]
) -> None:
    async def steady() -> tuple[Any, list[dict[str, Any]]] | None:
        """A scrape between two equal node listings (a node whose last step just succeeded turns
        AVAILABLE within about a second, when the end of its use is recorded)."""
        nodes = (await viewer.get("/nodes")).json()
        samples = await scrape(viewer)
        return (samples, nodes) if (await viewer.get("/nodes")).json() == nodes else None

    samples, nodes = await wait_for(steady, "the nodes steady across a scrape")

    per_state = Counter(n["state"] or "UNKNOWN" for n in nodes)
    for state in [*NodeState, "UNKNOWN"]:
        assert value(samples, "task_scheduler_nodes", state=state) == per_state[state], state
    for node in nodes:
        assert value(samples, "task_scheduler_node_state", node=node["id"], state=node["state"]) == 1
        assert value(samples, "task_scheduler_node_online", node=node["id"]) == int(node["online"])
    assert per_state["IN_USE"] >= 1 and per_state["ERROR"] >= 1  # the held task's node, the failed one's


async def test_metrics_notifications_agree_with_the_lab_workflow(
    viewer: httpx.AsyncClient, api_settings: Settings, temporal_client: Client
) -> None:
    lab = pytest.importorskip("task_scheduler.workflows.lab", reason="the LabWorkflow (notifications)")
    handle = temporal_client.get_workflow_handle(lab_workflow_id(api_settings.task_queue))

    async def status() -> Any:
        try:
            return await handle.query(lab.LabWorkflow.status)
        except RPCError:
            return None  # not started yet by the session's worker

    before = await wait_for(status, "the session's LabWorkflow")
    samples = await scrape(viewer)
    after = await status()

    assert before.sent <= value(samples, "task_scheduler_notifications_sent_total") <= after.sent
    assert before.failed <= value(samples, "task_scheduler_notifications_failed_total") <= after.failed
    assert value(samples, "task_scheduler_notifications_in_flight") >= 0


@pytest.fixture
def silent_temporal() -> Iterator[str]:
    """An address that accepts connections and never answers (a Temporal server that hangs)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


async def test_metrics_answer_within_the_scrape_timeout_when_temporal_hangs(
    serve_app: ServeApp, api_settings: Settings, make_client: MakeClient, silent_temporal: str
) -> None:
    url = await serve_app(settings=api_settings.model_copy(update={"temporal_address": silent_temporal}))

    started = time.monotonic()
    samples = await scrape(make_client(base_url=url), **{"X-Prometheus-Scrape-Timeout-Seconds": "2"})
    took = time.monotonic() - started

    assert took < 2.0, took
    for source in ("tasks", "operator_waits", "nodes", "notifications"):
        assert value(samples, "task_scheduler_metrics_source_up", source=source) == 0, source
    assert not any(name == "task_scheduler_tasks" for name, _ in samples)
