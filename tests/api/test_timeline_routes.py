"""GET /timeline and /timeline.svg over HTTP, with real tasks on the session's dev server and worker."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from api_support import Tasks, wait_for

SVG = "{http://www.w3.org/2000/svg}"


async def test_timeline_gives_the_steps_of_finished_and_failed_tasks(
    tasks: Tasks, viewer: httpx.AsyncClient
) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    quick = await tasks.start("quick")
    failing = await tasks.start("failing")
    await tasks.reaches(quick["task_id"], "FINISHED")
    await tasks.reaches(failing["task_id"], "ERROR")

    response = await viewer.get("/timeline", params={"since": since})

    assert response.status_code == 200, response.text
    timeline = response.json()
    runs = {(b["task_id"], b["step"]): b for b in timeline["bars"] if b["kind"] == "run"}
    assert runs[(quick["task_id"], 0)]["node"] == tasks.node("a")
    assert runs[(quick["task_id"], 0)]["outcome"] == "SUCCEEDED"
    assert runs[(quick["task_id"], 1)]["node"] == tasks.node("b")
    assert runs[(failing["task_id"], 0)]["outcome"] == "FAILED"
    assert (failing["task_id"], 1) not in runs  # never started
    assert tasks.node("a") in timeline["nodes"]
    assert timeline["truncated"] is False


async def test_timeline_filters_by_workflow_and_node_and_draws_an_svg(
    tasks: Tasks, viewer: httpx.AsyncClient
) -> None:
    quick = await tasks.start("quick")
    spare = await tasks.start("spare")
    await tasks.reaches(quick["task_id"], "FINISHED")
    await tasks.reaches(spare["task_id"], "FINISHED")

    by_workflow = (
        await viewer.get("/timeline", params={"since": "5m", "workflow": tasks.workflow("spare")})
    ).json()
    by_node = (await viewer.get("/timeline", params={"since": "5m", "node": tasks.node("b")})).json()
    svg = await viewer.get("/timeline.svg", params={"since": "5m", "node": tasks.node("a")})

    assert {b["task_id"] for b in by_workflow["bars"]} >= {spare["task_id"]}
    assert quick["task_id"] not in {b["task_id"] for b in by_workflow["bars"]}
    assert by_node["nodes"] == [tasks.node("b")]
    assert {b["node"] for b in by_node["bars"]} == {tasks.node("b")}
    assert quick["task_id"] in {b["task_id"] for b in by_node["bars"]}
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(svg.text)
    assert [r for r in root.iter(f"{SVG}rect") if r.get("class") == "lane"]
    titles = " ".join(t.text or "" for t in root.iter(f"{SVG}title"))
    assert quick["task_id"] in titles


async def test_timeline_shows_a_task_waiting_for_the_node_another_holds(
    tasks: Tasks, viewer: httpx.AsyncClient
) -> None:
    hold = tasks.hold()
    first = (await tasks.start("held", {"hold": hold}))["task_id"]
    await tasks.step_running(first)
    second = (await tasks.start("held", {"hold": hold}))["task_id"]

    async def both_shown() -> dict[tuple[str, str], Any] | None:
        bars = (await viewer.get("/timeline", params={"since": "2m", "node": tasks.node("h1")})).json()[
            "bars"
        ]
        seen = {(b["task_id"], b["kind"]): b for b in bars if b["step"] == 0}
        return seen if (first, "run") in seen and (second, "wait") in seen else None

    while_held = await wait_for(both_shown, f"{first} running and {second} waiting on the timeline")
    tasks.release(hold)
    await tasks.reaches(first, "FINISHED")
    await tasks.reaches(second, "FINISHED")
    after = (await viewer.get("/timeline", params={"since": "2m", "node": tasks.node("h1")})).json()["bars"]

    assert while_held[(first, "run")]["outcome"] == "RUNNING"
    assert while_held[(first, "run")]["ongoing"] is True
    assert while_held[(second, "wait")]["outcome"] == "WAITING"
    assert while_held[(second, "wait")]["ongoing"] is True
    mine = {(b["task_id"], b["kind"]): b for b in after if b["step"] == 0}
    assert mine[(first, "run")]["outcome"] == mine[(second, "run")]["outcome"] == "SUCCEEDED"
    assert mine[(second, "wait")]["ongoing"] is False
    assert mine[(second, "wait")]["end"] == mine[(second, "run")]["start"]


@pytest.mark.parametrize("route", ["/timeline", "/timeline.svg", "/stats"])
async def test_timeline_and_stats_refuse_a_bad_time_and_need_a_token(
    route: str, viewer: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    bad = await viewer.get(route, params={"since": "last tuesday"})
    backwards = await viewer.get(route, params={"since": "1h", "until": "2h"})
    refused = await anonymous.get(route)

    assert bad.status_code == 422
    assert "not a time" in bad.json()["detail"]
    assert backwards.status_code == 422
    assert "must be before until" in backwards.json()["detail"]
    assert refused.status_code == 401


async def test_timeline_by_default_fits_its_window_to_the_steps_it_shows_and_draws_for_a_width(
    tasks: Tasks, viewer: httpx.AsyncClient
) -> None:
    quick = await tasks.start("quick")
    await tasks.reaches(quick["task_id"], "FINISHED")

    fitted = (await viewer.get("/timeline", params={"node": tasks.node("a")})).json()
    svg = await viewer.get("/timeline.svg", params={"since": "fit", "width": 900})
    narrow = await viewer.get("/timeline.svg", params={"width": 100})

    since, until = datetime.fromisoformat(fitted["since"]), datetime.fromisoformat(fitted["until"])
    first = min(datetime.fromisoformat(b["start"]) for b in fitted["bars"])
    assert quick["task_id"] in {b["task_id"] for b in fitted["bars"]}
    assert until - since < timedelta(hours=2)  # not the 2 hours it reads
    assert since <= first  # a little before the first step shown: 5 % of the window, or a minute in all
    assert first - since <= max((until - first) * 0.06, timedelta(minutes=1))
    root = ET.fromstring(svg.text)
    assert (root.get("width"), root.get("viewBox", "").split()[2]) == ("900", "900")
    assert narrow.status_code == 422
    assert "480" in narrow.text


async def test_timeline_gives_a_running_wait_step_and_draws_it_on_the_wait_steps_lane(
    tasks: Tasks, viewer: httpx.AsyncClient
) -> None:
    task_id = (await tasks.start("settling"))["task_id"]

    async def shown() -> dict[str, Any] | None:
        timeline = (await viewer.get("/timeline", params={"since": "2m"})).json()
        return next((w for w in timeline["wait_steps"] if w["task_id"] == task_id), None)

    wait = await wait_for(shown, f"{task_id}'s wait on the timeline")
    svg = (await viewer.get("/timeline.svg", params={"since": "2m"})).text
    by_node = (await viewer.get("/timeline", params={"since": "2m", "node": tasks.node("a")})).json()

    assert (wait["step"], wait["step_id"], wait["outcome"], wait["ongoing"]) == (0, "settle", "RUNNING", True)
    assert datetime.fromisoformat(wait["ends_at"]) - datetime.fromisoformat(wait["start"]) == timedelta(
        seconds=600
    )
    assert task_id not in {b["task_id"] for b in by_node["bars"]} and by_node["wait_steps"] == []
    root = ET.fromstring(svg)
    assert any(r.get("class") == "wait-step running" for r in root.iter(f"{SVG}rect"))
    assert "(wait steps)" in {t.text for t in root.iter(f"{SVG}text")}
    assert any(f"{task_id} wait step settle" in (t.text or "") for t in root.iter(f"{SVG}title"))
