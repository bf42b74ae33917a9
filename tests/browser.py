"""Debian's Chromium for the browser tests, driven by Playwright (its own browser download cannot work
here). `make test` installs the package when it is missing."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Chromium's own connections (updates, sync, field trials) are refused by a closed network: leave them off.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 20_000


def require_chromium() -> Path:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `apt-get install chromium` (`make test` does)"
    return CHROMIUM
