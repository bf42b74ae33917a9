"""The OpenAPI pages on a lab PC without internet: `/docs` (Swagger UI) and `/redoc` (ReDoc) render in a
real headless Chromium (Debian's, driven by Playwright) that reaches only 127.0.0.1, and neither page
even tries to reach another host: their scripts, style sheet and favicon come from the API itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from api_support import MakeClient, ServeApp
from browser import CHROMIUM, CHROMIUM_FLAGS, UI_TIMEOUT_MS, require_chromium
from playwright.async_api import BrowserContext, Page, Request, Response, Route, async_playwright, expect

LOCAL = "http://127.0.0.1:"


@dataclass
class Offline:
    """A browser that reaches only 127.0.0.1: what else its pages sent out for (`blocked`; a request a
    page's Content-Security-Policy stops is never sent), and what failed on 127.0.0.1 (`failed`)."""

    context: BrowserContext
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    async def open(self, url: str) -> Page:
        page = await self.context.new_page()
        page.on("response", self._check)
        page.on("requestfailed", self._failed)
        await page.goto(url)
        return page

    async def route(self, route: Route) -> None:
        if route.request.url.startswith(LOCAL):
            await route.continue_()
        else:
            self.blocked.append(route.request.url)
            await route.abort()

    def _check(self, response: Response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.url}: {response.status}")

    def _failed(self, request: Request) -> None:
        if request.url.startswith(LOCAL):
            self.failed.append(f"{request.url}: {request.failure}")


@pytest.fixture
async def offline(tmp_path: Path) -> AsyncIterator[Offline]:
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        context = await browser.new_context()
        context.set_default_timeout(UI_TIMEOUT_MS)
        offline = Offline(context)
        await context.route("**/*", offline.route)
        try:
            yield offline
        finally:
            await context.close()
            await browser.close()


async def test_docs_render_the_operations_without_internet(serve_app: ServeApp, offline: Offline) -> None:
    url = await serve_app()

    page = await offline.open(f"{url}/docs")

    operation = page.locator(".opblock-summary", has=page.get_by_text("/tasks/{task_id}", exact=True))
    await expect(operation.first).to_be_visible()
    await expect(operation.first.get_by_text("GET", exact=True)).to_be_visible()
    await expect(page.get_by_text("/tasks/{task_id}/cancel", exact=True)).to_be_visible()
    assert offline.blocked == []
    assert offline.failed == []


async def test_redoc_renders_the_reference_without_internet(serve_app: ServeApp, offline: Offline) -> None:
    url = await serve_app()

    page = await offline.open(f"{url}/redoc")

    await expect(page.get_by_role("heading", name="task_scheduler (0.1.0)")).to_be_visible()
    await expect(page.get_by_text("/tasks/{task_id}", exact=True).first).to_be_attached()
    assert offline.blocked == []
    assert offline.failed == []


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_pages_name_no_other_host_and_need_no_token(
    serve_app: ServeApp, make_client: MakeClient, path: str
) -> None:
    url = await serve_app()
    anonymous = make_client(base_url=url)

    page = await anonymous.get(path)

    assert page.status_code == 200
    assert "https://" not in page.text and "http://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        response = await anonymous.get(f"/docs-assets/{asset}")
        assert response.status_code == 200, asset
