"""The lab page (/lab) in a real headless Chromium (Debian's, driven by Playwright) against a
`task-scheduler dev` stack (its Temporal dev server, worker and API) running a lab of the test's own: a
node that fails each task's first try and succeeds the next. An operator signs in, sees a failed task
under "Needs an operator" within seconds, retries, skips and cancels with a reason, restarts the node;
a viewer sees the same page without any command button; the timeline and the statistics show what ran.
The browser reaches only 127.0.0.1, so nothing can come from a CDN.

The screenshots are kept under the test's tmp_path; with TASK_SCHEDULER_SCREENSHOTS=DIR (as
`make screenshots` sets it to docs/images) they are written there too, for docs/lab-page.md."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dev_stack import DevStack
from lab_page import (
    NEEDS_WITHIN_MS,
    Offline,
    make_token,
    node_row,
    page_lab_stack,
    save,
    sign_in,
    start,
    task_card,
)
from playwright.sync_api import Locator, Page, expect

from task_scheduler.api.security import Role, create_token

REFUSED_RESTART = "cannot restart node prep: it is IN_USE by task lab-4"  # the API's 409
# assay: prep -> sampler (jams once per task) -> finish; quick: prep -> finish; slow: a minute on prep
# (or until its task is cancelled).
WORKFLOWS = [
    {"name": "assay", "steps": ["prep", "sampler", "finish"]},
    {"name": "quick", "steps": ["prep", "finish"]},
    {"name": "slow", "steps": [{"node": "prep", "args": {"seconds": 60}}]},
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with page_lab_stack(tmp_path_factory.mktemp("lab-page"), WORKFLOWS) as stack:
        yield stack


def _expect_needs(page: Page, task_id: str) -> Locator:
    """The task's card under "Needs an operator" (the only one), the red banner and the tab's title."""
    card = task_card(page, task_id)
    expect(card).to_be_visible(timeout=NEEDS_WITHIN_MS)
    expect(page.locator("#alert")).to_have_text("1 task needs an operator")
    expect(page).to_have_title(re.compile(r"^\(1\) needs an operator"))
    return card


def _retry_from_the_task_page(page: Page, tmp_path: Path) -> None:
    """lab-1 jammed: its own page shows the failed step; a retry with a reason finishes it."""
    card = _expect_needs(page, "lab-1")
    expect(card).to_contain_text("step 2 of 3 on sampler")
    expect(card).to_contain_text("sample jammed in sampler")
    expect(node_row(page, "sampler")).to_contain_text("lab-2")  # lab-2 waits in the sampler's line
    save(page, tmp_path, "lab-overview.png")

    card.get_by_role("link", name="lab-1").click()
    expect(page.locator("#task-title")).to_have_text("Task lab-1")
    failed = page.locator("#task-body tr.step").nth(1)
    expect(failed).to_contain_text("FAILED")
    expect(failed).to_contain_text("sample jammed in sampler")
    log = page.locator("#task-body details[open] pre.logs")  # the failed step's details are open
    expect(log).to_contain_text("sample jammed (first try of lab-1)")
    expect(page.get_by_role("link", name="open this task in the Temporal UI")).to_have_attribute(
        "href", re.compile(r"/workflows/lab-1")
    )
    save(page, tmp_path, "lab-task.png", page.locator("#task"))

    card.get_by_label("Reason for lab-1").fill("cleared the jam")
    card.get_by_role("button", name="Retry").click()
    expect(page.locator("#task-body .field", has_text="State")).to_contain_text("FINISHED")
    expect(page.locator("#task-body .decisions")).to_contain_text("continue (retry) at step 2")
    expect(page.locator("#task-body .decisions")).to_contain_text("cleared the jam")
    page.get_by_role("link", name="← the lab").click()


def _skip(page: Page) -> None:
    """lab-2 ran on the sampler next, and jammed: skip its step; it finishes without it."""
    card = _expect_needs(page, "lab-2")
    card.get_by_role("button", name="Skip").click()
    expect(card).to_be_hidden()
    row = page.locator("#recent-body tr", has=page.get_by_role("link", name="lab-2"))
    expect(row).to_contain_text("FINISHED")


def _viewer_sees_no_buttons(offline: Offline, url: str, token: str) -> None:
    page = offline.page()
    sign_in(page, url, token)
    expect(page.locator("#who")).to_have_text("page-viewer · viewer")
    expect(task_card(page, "lab-3")).to_be_visible(timeout=NEEDS_WITHIN_MS)
    expect(node_row(page, "sampler")).to_contain_text("ERROR")
    for name in ("Retry", "Skip", "Cancel", "Resume"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.locator("button.act")).to_have_count(0)
    page.context.close()


def _cancel_and_restart(page: Page) -> None:
    """lab-3 is cancelled with a reason; its node stays in ERROR until the operator restarts it."""
    card = task_card(page, "lab-3")
    card.get_by_label("Reason for lab-3").fill("plate dropped")
    card.get_by_role("button", name="Cancel").click()
    expect(card).to_be_hidden()
    expect(page.locator("#alert")).to_be_hidden()
    expect(page).to_have_title("Lab · task_scheduler")
    sampler = node_row(page, "sampler")
    expect(sampler).to_contain_text("ERROR")
    sampler.get_by_role("button", name="Restart sampler").click()
    expect(sampler.locator(".badge")).to_have_text("AVAILABLE")


def _restart_refused_while_a_step_runs(page: Page, http: httpx.Client) -> None:
    """The API refuses to restart a node in use (409): the page shows its answer on the node's row."""
    start(http, "lab-4", "slow")
    prep = node_row(page, "prep")
    expect(prep.locator(".badge")).to_have_text("IN_USE")
    expect(prep).to_contain_text("lab-4 step 1")
    prep.get_by_role("button", name="Restart prep").click()
    expect(prep.locator(".row-error")).to_contain_text(REFUSED_RESTART)
    assert http.post("/tasks/lab-4/cancel", json={"reason": "test over"}).status_code == 200
    expect(prep.locator(".badge")).to_have_text("AVAILABLE")


def _timeline_and_stats(page: Page, tmp_path: Path) -> None:
    """4 tasks ran 10 steps: lab-0 2, lab-1 3 (its retry redrew step 2), lab-2 3 (one skipped), lab-3 2
    (one cancelled)."""
    page.reload()  # the token is kept for the tab's session; the pictures are read at once
    # The default window (Fit) starts at the first of these steps: they fill the picture.
    expect(page.get_by_role("button", name="Fit")).to_have_attribute("aria-pressed", "true")
    timeline = page.locator("#timeline svg")
    expect(timeline).to_contain_text("4 tasks, 10 step runs")
    expect(timeline.locator("rect.run")).to_have_count(10)
    expect(timeline.locator("rect.run.failed")).to_have_count(0)  # lab-1's jam was retried with success
    expect(timeline.locator("rect.run.skipped")).to_have_count(1)  # lab-2's
    expect(timeline.locator("rect.run.cancelled")).to_have_count(1)  # lab-3's
    stats = page.locator("#stats")
    expect(stats.locator("svg.chart").first).to_be_visible()
    expect(stats).to_contain_text("25% of 4 calls, 3 failed")  # the sampler: lab-1 twice, lab-2, lab-3
    expect(stats).to_contain_text("100% of 4 calls")  # prep
    expect(stats).to_contain_text("100% of 3 calls")  # finish: lab-0, lab-1, lab-2
    expect(stats).to_contain_text("3 tasks: 2 FINISHED, 1 CANCELLED")  # assay
    expect(stats).to_contain_text("1 task: 1 FINISHED")  # quick
    save(page, tmp_path, "lab-timeline-stats.png", page.locator("#pictures"))


@pytest.mark.timeout(300)
def test_lab_page_an_operator_retries_skips_and_cancels_a_viewer_only_looks(
    stack: DevStack, offline: Offline, tmp_path: Path
) -> None:
    with stack.client() as http:
        operator, viewer = (
            make_token(http, "page-operator", "operator"),
            make_token(http, "page-viewer", "viewer"),
        )
        start(http, "lab-0", "quick")
        page = offline.page()
        sign_in(page, stack.url, operator)
        expect(page.locator("#who")).to_have_text("page-operator · operator")
        start(http, "lab-1", "assay")
        start(http, "lab-2", "assay")
        _retry_from_the_task_page(page, tmp_path)
        _skip(page)
        start(http, "lab-3", "assay")
        _expect_needs(page, "lab-3")
        _viewer_sees_no_buttons(offline, stack.url, viewer)
        _cancel_and_restart(page)
        _timeline_and_stats(page, tmp_path)
        _restart_refused_while_a_step_runs(page, http)
    assert offline.blocked == []


def test_lab_page_refuses_a_wrong_or_expired_token_with_the_apis_message(
    stack: DevStack, offline: Offline
) -> None:
    page = offline.page()

    sign_in(page, stack.url, "not-a-token")

    expect(page.locator("#sign-in-error")).to_contain_text("invalid token")
    expect(page.locator("#app")).to_be_hidden()
    secret = (stack.state_dir / "secret").read_text().strip()
    expired = create_token(secret, "page-late", Role.operator, ttl_s=-60)
    sign_in(page, stack.url, expired)
    expect(page.locator("#sign-in-error")).to_contain_text("the token has expired")
    assert page.evaluate("sessionStorage.length") == 0
    assert offline.blocked == []
