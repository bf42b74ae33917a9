"""Real notification receivers on loopback for the tests: a JSON webhook (http.server in a thread) that
can refuse for a while, and an SMTP server (aiosmtpd in its own thread). Each records what it accepted."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

FROM = "scheduler@lab.example.org"
TO = "operators@lab.example.org"


@dataclass
class Webhook:
    """POSTs to any path: answered 500 while `refusals` lasts, else 200 and recorded in `accepted`."""

    port: int = 0
    refusals: int = 0
    refused: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def refuse(self, times: int) -> None:
        with self.lock:
            self.refusals = times

    def messages(self, event: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.accepted if event in (None, m.get("event"))]

    def _receive(self, body: bytes, headers: dict[str, str]) -> int:
        with self.lock:
            if self.refusals > 0:
                self.refusals -= 1
                self.refused += 1
                return 500
            self.accepted.append(json.loads(body))
            self.headers.append(headers)
            return 200


@contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(hook._receive(body, dict(self.headers)))
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Mailbox:
    port: int
    mails: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from={FROM}&to={TO}&mode=insecure"

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            return list(self.mails)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        mail = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        with self.lock:
            self.mails.append(mail)  # type: ignore[arg-type]
        return "250 OK"


def text_of(mail: EmailMessage) -> str:
    """The plain-text part of a mail."""
    part = mail.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_receiver() -> Iterator[Mailbox]:
    """aiosmtpd cannot listen on port 0: a free port is picked first."""
    mailbox = Mailbox(port=free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
