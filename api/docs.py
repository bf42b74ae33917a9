"""The OpenAPI pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), with their scripts, style sheet and
favicon served by the API itself, from the `fastapi-offline` package: FastAPI's own pages load them from
a CDN, and are blank on a lab PC without internet. Public, as FastAPI's are; left out of the schema."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
# The package and folder the files come from: swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js,
# favicon.png.
ASSETS_PACKAGE = ("fastapi_offline", "static")
# ReDoc's side menu shows Redocly's logo from cdn.redoc.ly (hidden when it fails to load): images only
# from the API itself, so the browser does not even try.
REDOC_POLICY = "img-src 'self' data: blob:"


def install_docs(app: FastAPI) -> None:
    """Add `/docs`, its OAuth2 redirect, `/redoc` and the assets' mount to an app built with
    `docs_url=None, redoc_url=None`."""
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")
    app.add_api_route("/docs", _swagger_ui, include_in_schema=False)
    if app.swagger_ui_oauth2_redirect_url:
        app.add_api_route(app.swagger_ui_oauth2_redirect_url, _oauth2_redirect, include_in_schema=False)
    app.add_api_route("/redoc", _redoc, include_in_schema=False)


def _root(request: Request) -> str:
    """The path the API is served under (a proxy's prefix), as FastAPI's own pages use it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _openapi_url(request: Request) -> str:
    return _root(request) + (request.app.openapi_url or "/openapi.json")


async def _swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI: every operation, tried out from the browser."""
    app: FastAPI = request.app
    root = _root(request)
    redirect = app.swagger_ui_oauth2_redirect_url
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        oauth2_redirect_url=root + redirect if redirect else None,
        init_oauth=app.swagger_ui_init_oauth,
        swagger_ui_parameters=app.swagger_ui_parameters,
    )


async def _oauth2_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect page."""
    return get_swagger_ui_oauth2_redirect_html()


async def _redoc(request: Request) -> HTMLResponse:
    """ReDoc: the API's reference, on one page."""
    root = _root(request)
    page = get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = REDOC_POLICY
    return page
