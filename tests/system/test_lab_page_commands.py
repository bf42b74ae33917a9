"""The lab page after an operator's command, and on a laptop's screen, in a real headless Chromium
against a `task-scheduler dev` stack of the test's own lab (lab_page.py).

A task jams on the sampler; the operator presses Skip. From that moment the page is watched at every
change of its DOM: at no moment may it show the task in two states (its card under "Needs an operator",
its row under Running, its row under Recent tasks), and the command's acknowledgement goes when the task
leaves the panel. Then the page is read at 1400x900 and 1024x768: the timeline and the charts are drawn
for their width (their text is not shrunk nor cut), the timeline's default window fits the tour, and the
counts are in words ("1 task", "no task"). A running wait has its End wait button, under Running and on its
task's page, and the task goes on once it is pressed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from dev_stack import DevStack
from lab_page import (
    NEEDS_WITHIN_MS,
    Offline,
    make_token,
    page_lab_stack,
    sign_in,
    start,
    task_card,
)
from playwright.sync_api import Page, ViewportSize, expect

FINISH_S = 5  # the tour's last step: long enough to be seen under Running
WORKFLOWS = [
    {"name": "tour", "steps": ["prep", "sampler", {"node": "finish", "args": {"seconds": FINISH_S}}]},
    {"name": "idle", "steps": ["prep"]},  # never run: its outcomes say "no task"
    {"name": "settling", "steps": [{"id": "settle", "wait_s": 600}, "finish"]},  # a wait an operator ends
]
TASK = "tour-1"
FINISHED_WITHIN_MS = 30_000

# Called at every change of the page (a MutationObserver): what each panel shows of the task, and the
# acknowledgement under "Needs an operator". Kept in window.moments for the test to read.
WATCH = """task => {
  const badge = (row) => row && row.querySelector(".badge") ? row.querySelector(".badge").textContent : null;
  const row = (body) => [...document.querySelectorAll(`${body} tr`)]
    .find((tr) => tr.cells[0].textContent === task);
  const look = () => {
    const card = document.querySelector(`#needs-list article[aria-label="task ${task}"]`);
    window.moments.push({
      needs: card ? badge(card) : null,
      running: badge(row("#running-body")),
      recent: badge(row("#recent-body")),
      ack: document.getElementById("action-result").textContent,
    });
  };
  window.moments = [];
  look();
  new MutationObserver(look).observe(document.getElementById("app"),
    { subtree: true, childList: true, characterData: true, attributes: true });
}"""

SIZES: list[ViewportSize] = [{"width": 1400, "height": 900}, {"width": 1024, "height": 768}]

# Each picture's scale (its drawing's width to its width on screen) and the text that passes its edges.
MEASURE = """() => [...document.querySelectorAll("#timeline svg, #stats svg.chart")].map((svg) => {
  const drawn = svg.viewBox.baseVal.width;
  const outside = [...svg.querySelectorAll("text")].filter((t) => {
    const box = t.getBBox();
    return box.width > 0 && (box.x < -1 || box.x + box.width > drawn + 1);
  }).map((t) => t.textContent);
  const figure = svg.closest("figure");
  const id = figure ? figure.querySelector("figcaption").textContent : "timeline";
  return { id, scale: svg.getBoundingClientRect().width / drawn, outside };
})"""
WINDOW = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) to (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with page_lab_stack(tmp_path_factory.mktemp("lab-page-commands"), WORKFLOWS) as stack:
        yield stack


def _torn(moments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The moments that show the task in two states, or its acknowledgement once its card is gone."""
    return [
        m
        for m in moments
        if len({m[panel] for panel in ("needs", "running", "recent")} - {None}) > 1
        or (TASK in m["ack"] and m["needs"] is None)
    ]


@pytest.mark.timeout(240)
def test_lab_page_after_a_skip_shows_the_task_in_one_state_and_drops_the_acknowledgement(
    stack: DevStack, offline: Offline
) -> None:
    with stack.client() as http:
        page = offline.page()
        sign_in(page, stack.url, make_token(http, "page-operator", "operator"))
        start(http, TASK, "tour")
        card = task_card(page, TASK)
        expect(card).to_be_visible(timeout=NEEDS_WITHIN_MS)
        expect(page.locator("#recent-body")).to_contain_text(TASK)
        page.evaluate(WATCH, TASK)

        card.get_by_role("button", name="Skip").click()

        expect(card).to_be_hidden()
        row = page.locator("#recent-body tr", has=page.get_by_role("link", name=TASK, exact=True))
        expect(row.locator(".badge")).to_have_text("FINISHED", timeout=FINISHED_WITHIN_MS)
        expect(page.locator("#action-result")).to_be_empty()
    moments: list[dict[str, Any]] = page.evaluate("window.moments")
    assert _torn(moments) == []
    assert any(m["running"] == "ACTIVE" for m in moments), moments  # it was seen running its last step
    assert offline.blocked == []


def _fitted_minutes(page: Page) -> float:
    heading = page.locator("#timeline svg text").first.text_content() or ""
    match = WINDOW.search(heading)
    assert match, heading
    since, until = (datetime.fromisoformat(t) for t in match.groups())
    return (until - since).total_seconds() / 60


@pytest.mark.timeout(240)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s['width']}x{s['height']}")
def test_lab_page_draws_its_pictures_for_the_screens_width_and_counts_in_words(
    stack: DevStack, offline: Offline, size: ViewportSize, tmp_path: Path
) -> None:
    with stack.client() as http:
        start(http, f"tour-at-{size['width']}", "tour")
        page = offline.page(size)
        sign_in(page, stack.url, make_token(http, "page-viewer", "viewer"))
    expect(page.get_by_role("button", name="Fit")).to_have_attribute("aria-pressed", "true")
    for window in ("5 min", "15 min", "30 min", "1 h", "2 h", "8 h", "24 h"):
        expect(page.get_by_role("button", name=window, exact=True)).to_be_visible()
    expect(page.locator("#timeline svg")).to_contain_text("step run")
    expect(page.locator("#stats")).to_contain_text("idle")
    page.screenshot(path=tmp_path / f"lab-{size['width']}.png", full_page=True)

    pictures: list[dict[str, Any]] = page.evaluate(MEASURE)
    text = page.locator("#app").inner_text()

    assert len(pictures) >= 6, pictures  # the timeline and five charts
    for picture in pictures:
        assert 0.95 <= picture["scale"] <= 1.05, picture  # drawn for its width: its text keeps its size
        assert picture["outside"] == [], picture
    assert _fitted_minutes(page) < 30  # the tours of this module, not two hours of nothing
    assert "no task" in text  # the idle workflow's outcomes, and its week
    assert not re.search(r"\b(0|1) (tasks|calls|step runs)\b|\b0 tasks?:", text), text


@pytest.mark.timeout(240)
def test_lab_page_ends_a_running_wait_with_its_button(stack: DevStack, offline: Offline) -> None:
    task_id = "settle-1"
    with stack.client() as http:
        page = offline.page()
        sign_in(page, stack.url, make_token(http, "page-waiter", "operator"))
        start(http, task_id, "settling")
        running = page.locator("#running-body tr", has=page.get_by_role("link", name=task_id, exact=True))
        expect(running.get_by_role("button", name=f"End wait settle of {task_id}")).to_be_visible()
        running.get_by_role("link", name=task_id, exact=True).click()
        settle = page.locator("#task-body tr.step").first
        expect(settle).to_contain_text("left")  # when it ends, and how long is left

        settle.get_by_role("button", name=f"End wait settle of {task_id}").click()

        expect(page.locator("#task-body .fields .badge")).to_have_text("FINISHED", timeout=FINISHED_WITHIN_MS)
        expect(settle.locator(".badge")).to_have_text("SKIPPED")
        expect(settle).to_contain_text("ended by page-waiter after")
        expect(settle.get_by_role("button")).to_have_count(0)
        decisions = http.get(f"/tasks/{task_id}").json()["decisions"]
    assert [(d["command"], d["mode"], d["step"], d["by"]) for d in decisions] == [
        ("continue", "next", 0, "page-waiter")
    ]
    assert offline.blocked == []
