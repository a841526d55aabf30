"""What a client may send the web front: the body cap (while it streams), Slack's headers before
the body, control characters and odd digits in forms, trusted proxies and IPv6 clients per /64.

The app is driven through its ASGI interface (a body generator records how much the app pulled)
and served by uvicorn on loopback (real chunked requests over a socket)."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from peers import free_port
from starlette.applications import Starlette
from web_support import csrf_of, running

from bot.config import Settings
from bot.errors import ConfigError
from bot.store import Store
from bot.web import app as web_app
from bot.web import create_app, limits
from bot.web.limits import MAX_BODY
from bot.web.security import new_csrf

SLACK_SECRET = "slack-signing-secret-for-limits"
CHUNK = 8 * 1024


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Starlette]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        base_url="http://127.0.0.1:8000",
        secret_key="limits-secret-key",
        outbox_dir=tmp_path / "outbox",
        environ={"SLACK_SIGNING_SECRET": SLACK_SECRET},
    )
    store = Store(settings.database_url)
    yield create_app(settings, store)
    store.close()


class Upload:
    """An endless chunked body handed to the app one ASGI message at a time; counts what it took."""

    def __init__(self, chunk: bytes = b"a=" + b"x" * (CHUNK - 2), limit: int = 64 << 20) -> None:
        self.chunk, self.limit, self.pulled = chunk, limit, 0

    async def receive(self) -> dict[str, Any]:
        if self.pulled >= self.limit:
            return {"type": "http.disconnect"}
        self.pulled += len(self.chunk)
        return {"type": "http.request", "body": self.chunk, "more_body": self.pulled < self.limit}


def call(
    app: Starlette,
    path: str,
    body: Upload,
    headers: dict[str, str] | None = None,
    client: tuple[str, int] = ("127.0.0.1", 50000),
) -> tuple[int, bytes]:
    """POST `body` to `path` through the ASGI interface; (status, response body)."""
    got: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            got["status"] = message["status"]
        elif message["type"] == "http.response.body":
            got["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": client,
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    asyncio.run(app(scope, body.receive, send))
    return got["status"], got["body"]


def slack_headers() -> dict[str, str]:
    """Slack's headers with a fresh timestamp (the signature is checked once the body is read)."""
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": str(int(time.time())),
        "x-slack-signature": "v0=" + "0" * 64,
    }


FORM = {"content-type": "application/x-www-form-urlencoded"}
ROUTES = [
    ("/subscribe", FORM),
    ("/confirm/x.y", FORM),
    ("/manage/x.y", FORM),
    ("/unsubscribe/x.y", FORM),
    ("/feedback/x.y/up", FORM),
    ("/slack/actions", None),
]


# --- the body cap ------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "headers"), ROUTES)
def test_a_chunked_body_is_stopped_at_the_cap_while_it_streams(
    app: Starlette, path: str, headers: dict[str, str] | None
) -> None:
    upload = Upload()
    status, text = call(app, path, upload, headers or slack_headers())
    assert (status, text) == (413, b"request too large\n")
    # The app pulled the cap and one chunk at most: nothing beyond the cap was read or kept.
    assert MAX_BODY < upload.pulled <= MAX_BODY + CHUNK


@pytest.mark.parametrize(("path", "headers"), ROUTES)
def test_a_declared_length_over_the_cap_is_refused_before_reading(
    app: Starlette, path: str, headers: dict[str, str] | None
) -> None:
    upload = Upload()
    length = {"content-length": str(MAX_BODY + 1)}
    assert call(app, path, upload, {**(headers or slack_headers()), **length})[0] == 413
    assert upload.pulled == 0


@pytest.mark.parametrize(
    "drop",
    ["x-slack-request-timestamp", "x-slack-signature", "stale", "not digits"],
)
def test_slack_headers_are_checked_before_a_byte_of_the_body(app: Starlette, drop: str) -> None:
    headers = slack_headers()
    if drop == "stale":
        headers["x-slack-request-timestamp"] = str(int(time.time()) - 301)
    elif drop == "not digits":
        headers["x-slack-request-timestamp"] = "1e9"
    else:
        del headers[drop]
    upload = Upload()
    status, _ = call(app, "/slack/actions", upload, headers)
    assert status == 401 and upload.pulled == 0


def test_a_small_body_under_the_cap_is_read_whole(app: Starlette) -> None:
    upload = Upload(limit=MAX_BODY - CHUNK)
    status, text = call(app, "/slack/actions", upload, slack_headers())
    assert (status, text) == (401, b"refused: bad signature")  # read, then refused on the MAC
    assert upload.pulled == MAX_BODY - CHUNK


@pytest.mark.slow
def test_uvicorn_answers_413_and_stops_a_chunked_upload(app: Starlette) -> None:
    """A real chunked request over a socket: the answer comes while the client is still sending."""
    total = 256 << 20
    with running(app, free_port()) as url:
        port = int(url.rsplit(":", 1)[1])
        head = "".join(f"{k}: {v}\r\n" for k, v in slack_headers().items())
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            f"POST /slack/actions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{head}\r\n".encode()
        )
        chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
        sent, answer = 0, b""
        sock.setblocking(False)
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                break
            if writable:
                try:
                    sent += sock.send(chunk)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # the server closed the connection
                    break
        sock.setblocking(True)
        sock.settimeout(5)
        try:
            while b"\r\n\r\n" not in answer:
                part = sock.recv(4096)
                if not part:
                    break
                answer += part
        finally:
            sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 32 << 20, f"the client sent {sent >> 20} MB before the answer"


# --- form fields -------------------------------------------------------------------------------
@pytest.fixture
def site(backend_url: str, tmp_path: Path) -> Iterator[str]:
    settings = Settings(
        database_url=backend_url,
        base_url="http://127.0.0.1:8000",
        secret_key="limits-secret-key",
        outbox_dir=tmp_path / "outbox",
    )
    store = Store(backend_url)
    try:
        with running(create_app(settings, store), free_port()) as url:
            yield url
    finally:
        store.close()


def _post(url: str, **fields: str) -> requests.Response:
    s = requests.Session()
    data = {"csrf": csrf_of(s.get(url + "/").text), "keywords": "quantization", **fields}
    return s.post(url + "/subscribe", data=data)


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "a\x00b"), ("email", "a\x00@example.org"), ("keywords", "x\x1by"), ("hour", "\x00")],
)
def test_a_control_character_in_a_field_is_a_400_that_says_so(
    site: str, field: str, value: str
) -> None:
    r = _post(site, **{"email": "ctl@example.org", field: value})
    assert r.status_code == 400, r.text[:300]
    assert "control character" in r.text and repr(field) in r.text.replace("&#39;", "'")


@pytest.mark.parametrize(("field", "value"), [("hour", "²"), ("max_items", "²"), ("hour", "٣")])
def test_digits_int_refuses_are_a_400_with_the_fields_message(
    site: str, field: str, value: str
) -> None:
    r = _post(site, email="digits@example.org", **{field: value})
    assert r.status_code == 400
    assert ("Choose an hour" if field == "hour" else "papers per digest") in r.text


# --- who the client is: trusted proxies, IPv6 per /64 ----------------------------------------------
def _subscribe(app: Starlette, n: int, client: str, forwarded: str = "") -> int:
    settings = app.state.web.settings
    token = new_csrf(settings)
    body = f"csrf={token}&email=c{n}%40example.org&keywords=x".encode()
    headers = {**FORM, "cookie": f"digestbot_csrf={token}", "content-length": str(len(body))}
    if forwarded:
        headers["x-forwarded-for"] = forwarded
    return call(app, "/subscribe", Upload(body, len(body)), headers, (client, 40000))[0]


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    app: Starlette,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(web_app, "PER_CLIENT_PER_HOUR", 1)
    monkeypatch.setattr(limits, "_told", set())
    with caplog.at_level(logging.WARNING, logger="bot.web.limits"):
        assert _subscribe(app, 1, "127.0.0.1", "203.0.113.1") == 200
        assert _subscribe(app, 2, "127.0.0.1", "203.0.113.2") == 429  # one bucket: the peer
    (told,) = [r.getMessage() for r in caplog.records]  # once, saying what to set
    assert "from 127.0.0.1 ignored" in told and "DIGESTBOT_TRUSTED_PROXIES" in told
    trusting = Settings(
        database_url=f"sqlite:///{tmp_path / 'proxied.sqlite'}",
        secret_key="limits-secret-key",
        outbox_dir=tmp_path / "outbox",
        trusted_proxies="10.0.0.0/8, 127.0.0.1",
    )
    store = Store(trusting.database_url)
    try:
        proxied = create_app(trusting, store)
        assert _subscribe(proxied, 3, "127.0.0.1", "203.0.113.1") == 200
        assert _subscribe(proxied, 4, "127.0.0.1", "203.0.113.2") == 200  # another client
        assert _subscribe(proxied, 5, "10.1.2.3", "203.0.113.2") == 429  # the same client
        # A client's own X-Forwarded-For is passed on by a proxy: the proxy's entry counts.
        assert _subscribe(proxied, 6, "127.0.0.1", "198.51.100.7, 203.0.113.1") == 429
        assert _subscribe(proxied, 7, "192.0.2.9", "203.0.113.3") == 200  # not a proxy: itself
        assert _subscribe(proxied, 8, "192.0.2.9", "203.0.113.4") == 429
    finally:
        store.close()


def test_the_warning_about_forwarded_for_is_bounded(
    app: Starlette, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Clients send X-Forwarded-For too: a line per peer for the first few, then one more, and
    no address kept after that (a public server would otherwise log, and keep, every client)."""
    monkeypatch.setattr(limits, "_told", set())
    with caplog.at_level(logging.WARNING, logger="bot.web.limits"):
        for n in range(limits.TELL_PEERS + 20):
            _subscribe(app, 100 + n, f"192.0.2.{n + 1}", "203.0.113.1")
    said = [r.getMessage() for r in caplog.records if "X-Forwarded-For" in r.getMessage()]
    assert len(said) == limits.TELL_PEERS + 1 and "not told again" in said[-1]
    assert len(limits._told) == limits.TELL_PEERS + 1


def test_ipv6_clients_count_per_64(app: Starlette, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_app, "PER_CLIENT_PER_HOUR", 1)
    assert _subscribe(app, 1, "2001:db8:1:2::1") == 200
    assert _subscribe(app, 2, "2001:db8:1:2:ffff:ffff:ffff:fffe") == 429  # the same /64
    assert _subscribe(app, 3, "2001:db8:1:3::1") == 200  # the next /64
    assert _subscribe(app, 4, "::ffff:192.0.2.1") == 200  # IPv4-mapped: the IPv4 address
    assert _subscribe(app, 5, "192.0.2.1") == 429


@pytest.mark.parametrize("setting", ["127.0.0.l", "10.0.0.0/33", "proxy.internal"])
def test_a_mistyped_trusted_proxy_is_refused_with_the_fix(setting: str) -> None:
    with pytest.raises(
        ConfigError, match=r"DIGESTBOT_TRUSTED_PROXIES: .* write e\.g\. 127\.0\.0\.1"
    ):
        limits.trusted_proxies(f"10.0.0.0/8, {setting}")
    assert limits.trusted_proxies(" 10.0.0.0/8, ::1 ,*") == ["10.0.0.0/8", "::1", "*"]
