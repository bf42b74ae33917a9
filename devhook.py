"""The `dev` stack's own notification receiver: the demo lab's notifications.json sends to a JSON
webhook on this machine (`json://127.0.0.1:8765/...`); `dev` listens there and prints each message,
so a new user sees a notification arrive without setting up Slack or email first. A port that is taken
already (the lab's own receiver, another `dev`) is left to whoever holds it."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .engine.notifications import NotificationsConfig

LOCAL_HOSTS = ("127.0.0.1", "localhost")


def local_webhook(config: NotificationsConfig) -> tuple[str, int, str] | None:
    """The first target that is a JSON webhook on this machine: (url, port, path)."""
    for target in config.targets:
        parts = urlsplit(target.url)
        if parts.scheme == "json" and parts.hostname in LOCAL_HOSTS and parts.port:
            return target.url, parts.port, parts.path or "/"
    return None


@contextlib.contextmanager
def printing_webhook(port: int, log: Any = print) -> Iterator[bool]:
    """Receive POSTs on 127.0.0.1:`port` and print each notification's title and body. Yields whether
    it listens: False when the port is taken, and the notifications go to whoever listens there."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.end_headers()
            try:
                message = json.loads(body)
            except ValueError:
                message = {"title": "(not JSON)", "message": body.decode(errors="replace")}
            log(f"\n[notification] {message.get('title', '')}\n{message.get('message', '')}\n", flush=True)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the access log of a demo receiver is noise

    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError:  # taken: EADDRINUSE, or a port this user may not open
        yield False
        return
    thread = threading.Thread(target=server.serve_forever, name="dev-webhook", daemon=True)
    thread.start()
    try:
        yield True
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
