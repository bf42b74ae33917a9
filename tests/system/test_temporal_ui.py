"""What an operator sees in the Temporal UI, in a real headless Chromium (Debian's, driven by Playwright)
against a `task-scheduler dev` stack: the task list with each task's state, lab workflow and node, and a
failed task's summary and current details (what failed and the commands that continue it).

The screenshots are kept under the test's tmp_path; with TASK_SCHEDULER_SCREENSHOTS=DIR (as
`make screenshots` sets it to docs/images) they are written there too, for README."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from browser import CHROMIUM, CHROMIUM_FLAGS, UI_TIMEOUT_MS, require_chromium
from dev_stack import DevStack, fast_demo_lab, wait_until
from playwright.sync_api import BrowserContext, Page, Route, ViewportSize, expect, sync_playwright

SCREENSHOTS_ENV = "TASK_SCHEDULER_SCREENSHOTS"
# Custom search attributes shown as columns; Run ID and Type say nothing an operator needs here.
TASK_COLUMNS = ["TaskState", "LabWorkflow", "CurrentNode"]
HIDDEN_COLUMNS = ["Run ID", "Type", "End"]
# Screenshots a README shows at its width: the list of three tasks, then the failed task's page.
LIST_VIEW: ViewportSize = {"width": 1440, "height": 520}
TASK_VIEW: ViewportSize = {"width": 1440, "height": 690}
TASKS_QUERY = 'WorkflowType="TaskWorkflow"'


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    stack = DevStack(config=fast_demo_lab(tmp_path / "lab", speed=0.1), state_dir=tmp_path / "state")
    yield stack
    stack.cleanup()


def _local_only(route: Route) -> None:
    """Requests to this machine go on; any other (the UI's news feed, say) fails at once."""
    if route.request.url.startswith("http://127.0.0.1:"):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, on a new empty profile, reaching only 127.0.0.1."""
    require_chromium()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport=LIST_VIEW,
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        context.route("**/*", _local_only)
        try:
            yield context
        finally:
            context.close()


def _start(http: httpx.Client, task_id: str, workflow: str, args: dict[str, Any]) -> None:
    response = http.post("/tasks", json={"workflow_name": workflow, "args": args, "id": task_id})
    assert response.status_code == 201, response.text


def _listed(http: httpx.Client, task_id: str, **filters: str) -> None:
    """Wait until the task list (Temporal's visibility, which the UI reads too) shows the task so."""

    def probe() -> bool:
        tasks = http.get("/tasks", params=filters).json()["tasks"]
        return any(task["task_id"] == task_id for task in tasks)

    wait_until(probe, f"{task_id} listed with {filters}", timeout_s=30, interval_s=0.2)


def _save(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=tmp_path / name)
    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, Path(folder) / name)


def _show_task_columns(page: Page) -> None:
    """The operator's Configure Columns: add the task's search attributes, drop what does not help."""
    page.get_by_role("button", name="Configure Columns").click()
    for name in TASK_COLUMNS:
        page.get_by_role("button", name=f"Add {name} column").click()
    for name in HIDDEN_COLUMNS:
        page.get_by_role("button", name=f"Remove {name} column").click()
    page.get_by_role("button", name="Close Workflows Table configuration").click()


def _start_tour_tasks(stack: DevStack) -> None:
    """As in README's tour: one finished, one failed at the dispenser, one waiting for that dispenser."""
    with stack.client() as http:
        _start(http, "tour-1", "prepare-plate", {"plate": "P1"})
        _listed(http, "tour-1", state="FINISHED")
        _start(http, "tour-2", "prepare-plate", {"plate": "P2", "volume_ul": 5000})
        _listed(http, "tour-2", state="ERROR", node="dispenser")
        _start(http, "tour-3", "full-assay", {"plate": "P3"})
        _listed(http, "tour-3", state="ACTIVE", node="dispenser")


def _check_task_list(page: Page, ui: str) -> None:
    page.goto(f"{ui}/namespaces/default/workflows?query={quote(TASKS_QUERY)}")
    _show_task_columns(page)
    expected = {
        "tour-1": ["Completed", "FINISHED", "prepare-plate"],
        "tour-2": ["Running", "ERROR", "prepare-plate", "dispenser"],
        "tour-3": ["Running", "ACTIVE", "full-assay", "dispenser"],
    }
    for task_id, cells in expected.items():
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=task_id, exact=True))
        for cell in cells:
            expect(row).to_contain_text(cell, ignore_case=True)
    for column in TASK_COLUMNS:
        expect(page.get_by_role("columnheader", name=column)).to_be_visible()


def _check_failed_task(page: Page) -> None:
    """The failed task's page, tab User Metadata: its summary, and current details rendered from
    Markdown (each in a frame of its own)."""
    page.get_by_role("link", name="tour-2", exact=True).click()
    page.get_by_role("tab", name="User Metadata").click()
    summary = page.frame_locator("iframe#user-metadata-summary").locator("body")
    expect(summary).to_contain_text("prepare-plate (5 steps) plate=P2 volume_ul=5000")
    details = page.frame_locator("iframe#user-metadata-current-details").locator("body")
    expect(details).to_contain_text("ERROR")
    expect(details).to_contain_text("on node dispenser: waits for an operator")
    expect(details).to_contain_text("volume 5000 µL exceeds capacity 1000 µL")
    expect(details).to_contain_text("task-scheduler task continue tour-2")
    expect(details).to_contain_text("task-scheduler task cancel tour-2")


def test_temporal_ui_shows_tasks_and_what_a_failed_one_waits_for(
    stack: DevStack, browser: BrowserContext, tmp_path: Path
) -> None:
    stack.start()
    _start_tour_tasks(stack)
    page = browser.new_page()
    ui = f"http://127.0.0.1:{stack.ui_port}"

    _check_task_list(page, ui)
    _save(page, tmp_path, "temporal-ui-tasks.png")

    page.set_viewport_size(TASK_VIEW)
    _check_failed_task(page)
    _save(page, tmp_path, "temporal-ui-failed-task.png")
