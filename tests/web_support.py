"""Shared by the web tests: a real SMTP server (aiosmtpd), the app under uvicorn, form helpers."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(msg)  # type: ignore[arg-type]
        return "250 OK"

    def wait(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Wait until at least `count` messages arrived; return them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} message(s), got {len(self.messages)}")

    def to(self, address: str) -> list[EmailMessage]:
        """The messages sent to `address` so far."""
        with self.lock:
            return [m for m in self.messages if address in str(m["To"])]


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on loopback; yields its inbox and port."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@contextmanager
def running(app: Starlette, port: int) -> Iterator[str]:
    """`app` served by uvicorn on 127.0.0.1:`port` in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def csrf_of(html: str) -> str:
    """The CSRF token in a page's form."""
    m = CSRF.search(html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def link_in(msg: EmailMessage, path: str) -> str:
    """The first URL in a message's text whose path starts with `path` (e.g. /confirm/)."""
    body = msg.get_body(("plain",))
    assert body is not None
    m = re.search(r"https?://\S+" + re.escape(path) + r"\S+", body.get_content())
    assert m, f"no {path} link in the message"
    return m.group(0)
