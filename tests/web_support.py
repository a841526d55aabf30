"""Shared by the web tests: the app under uvicorn, form and mail helpers (the SMTP peer is peers.SmtpPeer)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
import uvicorn
from peers import Mail, SmtpPeer
from starlette.applications import Starlette

from bot.config import Settings
from bot.store import Store

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@contextmanager
def running(app: Starlette, port: int) -> Iterator[str]:
    """`app` served by uvicorn on 127.0.0.1:`port` in a thread, as `digestbot serve` runs it (no
    proxy headers: the app reads X-Forwarded-For itself); yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            proxy_headers=False,
        )
    )
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


def link_in(mail: Mail, path: str) -> str:
    """The first URL in a message's text whose path starts with `path` (e.g. /confirm/)."""
    body = mail.parsed().get_body(("plain",))
    assert body is not None
    m = re.search(r"https?://\S+" + re.escape(path) + r"\S+", body.get_content())
    assert m, f"no {path} link in the message"
    return m.group(0)


@dataclass
class Site:
    """A digestbot web app served on loopback, its settings, store and the SMTP server it mails."""

    url: str
    settings: Settings
    store: Store
    inbox: SmtpPeer


@dataclass
class Served:
    """A `digestbot serve` process; `out` and `err` hold what it wrote once it has stopped."""

    proc: subprocess.Popen[str]
    err: str = ""
    out: str = ""


@contextmanager
def digestbot_serve(
    folder: Path, port: int, env: dict[str, str], *options: str
) -> Iterator[Served]:
    """`python -m bot serve --port PORT [options]` in `folder`, up (its /healthz answers) inside."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", *options, "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(proc)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).text == "ok":
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                "digestbot serve did not start"
            )
            time.sleep(0.1)
        yield served
    finally:
        proc.terminate()
        served.out, served.err = proc.communicate(timeout=20)
