"""The lab page: `/lab` (index.html) and its style sheet and ES modules under `/lab/assets/`, static
files of the package (api/static/lab/), with no build step and nothing from another host. The page asks
for a token and then reads the same JSON API as the CLI. Public, as the files hold no data; left out of
the schema. Served with a strict Content-Security-Policy: scripts, styles and calls only to the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

FOLDER = Path(__file__).resolve().parent / "static" / "lab"
ASSETS_URL = "/lab/assets"
# No inline script or style, no other host; SVG pictures of the API are drawn inline, blobs for saving.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # A new version of the package is picked up at the next load (the files are small).
    "Cache-Control": "no-cache",
}


class LabAssets(StaticFiles):
    """The page's files, each answer with the page's headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def install_lab_page(app: FastAPI) -> None:
    """Add `/lab`, its assets' mount, and `/` redirecting to `/lab`."""
    app.mount(ASSETS_URL, LabAssets(directory=FOLDER), name="lab-assets")
    app.add_api_route("/lab", _page, include_in_schema=False)
    app.add_api_route("/", _root, include_in_schema=False)


async def _page() -> FileResponse:
    """The lab page (it signs in and reads the API by itself)."""
    return FileResponse(FOLDER / "index.html", media_type="text/html", headers=HEADERS)


async def _root(request: Request) -> RedirectResponse:
    """The API's root is the lab page."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(f"{root}/lab", status_code=307)
