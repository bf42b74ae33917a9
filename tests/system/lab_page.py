"""What the lab page's browser tests share: their lab (a node that fails each task's first try and
succeeds the next), headless Chromium (Debian's, driven by Playwright) that reaches only 127.0.0.1, and
the few steps every test takes: a token, a task, signing in, a task's card, a node's row, a screenshot.

The screenshots are kept under the test's tmp_path; with TASK_SCHEDULER_SCREENSHOTS=DIR (as
`make screenshots` sets it to docs/images) they are written there too, for the manual."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from browser import CHROMIUM, CHROMIUM_FLAGS, UI_TIMEOUT_MS, require_chromium
from dev_stack import DevStack
from playwright.sync_api import Browser, Locator, Page, Request, Route, ViewportSize, expect, sync_playwright

SCREENSHOTS_ENV = "TASK_SCHEDULER_SCREENSHOTS"
LOCAL = "http://127.0.0.1:"
VIEW: ViewportSize = {"width": 1440, "height": 980}
PLAYWRIGHT_EXPECT_MS = 5_000  # Playwright's default, put back after each test
NEEDS_WITHIN_MS = 10_000  # a failed task is under "Needs an operator" this soon (the page polls every 2 s)

PAGE_NODES = '''
"""The lab page test's drivers: quick steps, and a sampler that jams on each task's first try."""

import threading
import time
from pathlib import Path

from task_scheduler import BaseNode, StepResult
from task_scheduler.engine.errors import StepAbortedError


class Station(BaseNode):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stop = threading.Event()

    def _execute(self, src, dst, task_id, args=None):
        self._stop.clear()
        if self._stop.wait(float((args or {}).get("seconds", 0.3))):
            raise StepAbortedError(f"{self.id}: aborted")
        self.logger.info("{}: plate of {} handled", self.id, task_id)
        return StepResult(message=f"plate of {task_id} handled", output={"station": self.id})

    def _abort(self):
        self._stop.set()


class JamsOnce(BaseNode):
    def _execute(self, src, dst, task_id, args=None):
        time.sleep(0.3)
        mark = Path(self.properties["marks"]) / task_id
        if not mark.exists():
            mark.write_text("jammed once")
            self.logger.error("{}: sample jammed (first try of {})", self.id, task_id)
            return StepResult(status=1, message=f"sample jammed in {self.id}")
        self.logger.info("{}: sample of {} measured", self.id, task_id)
        return StepResult(message="sample measured", output={"value": 42})
'''


def write_page_lab(folder: Path, workflows: list[dict[str, Any]]) -> Path:
    """The nodes prep, sampler (jams once per task) and finish, and `workflows` over them."""
    marks = folder / "marks"
    marks.mkdir(parents=True)
    (folder / "page_nodes.py").write_text(PAGE_NODES, encoding="utf-8")
    nodes = [
        {"id": "prep", "name": "Plate prep", "type": "Station"},
        {"id": "sampler", "name": "Sampler", "type": "JamsOnce", "properties": {"marks": str(marks)}},
        {"id": "finish", "name": "Sealer", "type": "Station"},
    ]
    (folder / "nodes.json").write_text(json.dumps({"modules": ["page_nodes.py"], "nodes": nodes}), "utf-8")
    (folder / "workflows.json").write_text(json.dumps({"workflows": workflows}), encoding="utf-8")
    return folder


@contextmanager
def page_lab_stack(folder: Path, workflows: list[dict[str, Any]]) -> Iterator[DevStack]:
    """A `dev` stack on the page's lab with these workflows, stopped by its pid at the end."""
    stack = DevStack(config=write_page_lab(folder / "lab", workflows), state_dir=folder / "state")
    try:
        stack.start()
        yield stack
    finally:
        stack.cleanup()


@dataclass
class Offline:
    """Pages that reach only 127.0.0.1; what else they asked for is refused and kept in `blocked`."""

    browser: Browser
    blocked: list[str] = field(default_factory=list)

    def page(self, viewport: ViewportSize = VIEW) -> Page:
        """A new tab (its own sessionStorage: signed out)."""
        context = self.browser.new_context(viewport=viewport)
        context.set_default_timeout(UI_TIMEOUT_MS)
        context.route("**/*", self._route)
        return context.new_page()

    def _route(self, route: Route, request: Request) -> None:
        if request.url.startswith(LOCAL):
            route.continue_()
        else:
            self.blocked.append(request.url)
            route.abort()


@contextmanager
def offline_browser() -> Iterator[Offline]:
    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        expect.set_options(timeout=UI_TIMEOUT_MS)  # a poll of the page may be 2 s away, a task 10 s
        try:
            yield Offline(browser)
        finally:
            expect.set_options(timeout=PLAYWRIGHT_EXPECT_MS)
            browser.close()


def save(page: Page, tmp_path: Path, name: str, target: Locator | None = None) -> None:
    (target or page).screenshot(path=tmp_path / name)
    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, Path(folder) / name)


def make_token(http: httpx.Client, name: str, role: str) -> str:
    response = http.post("/tokens", json={"name": name, "role": role})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def start(http: httpx.Client, task_id: str, workflow: str) -> None:
    response = http.post("/tasks", json={"workflow_name": workflow, "id": task_id})
    assert response.status_code == 201, response.text


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/lab")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def task_card(page: Page, task_id: str) -> Locator:
    return page.get_by_role("article", name=f"task {task_id}")


def node_row(page: Page, node: str) -> Locator:
    return page.locator("#nodes-body tr", has=page.get_by_text(node, exact=True))
