"""How the API is served by uvicorn, in one place: `task-scheduler api`, `task-scheduler dev` and the
tests all build their server here. Forwarded headers are believed only from the proxies the settings
name: uvicorn's own default believes any X-Forwarded-For sent from 127.0.0.1, so a reverse proxy (or an
SSH tunnel) on the API's host would let any caller claim any address."""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI


def server_config(
    app: FastAPI, host: str | None = None, port: int | None = None, **options: Any
) -> uvicorn.Config:
    """A uvicorn config for `app`, on `host`:`port` (default: the app's settings' API host and port);
    `options` are uvicorn's own (log_level, lifespan, ...)."""
    settings = app.state.settings
    proxies = [str(network) for network in settings.trusted_proxies]
    options.setdefault("log_level", "warning")
    return uvicorn.Config(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or [],
        **options,
    )
