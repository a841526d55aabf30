"""Scriptable local peers for the ledger tests: an SMTP server (aiosmtpd) and a Slack Web API server.

Both run on loopback in a thread of the test process and record what they accepted, so a test
can count deliveries even when the digestbot process that sent them was killed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mail:
    """One message the SMTP peer accepted."""

    to: tuple[str, ...]
    message_id: str
    digest: str
    at: float


@dataclass
class SmtpScript:
    """What the SMTP peer does: its answers, in order, then 250 for the rest."""

    data_replies: list[str] = field(default_factory=list)  # e.g. ["451 4.3.0 try later"]; "drop" closes the connection
    refuse: set[str] = field(default_factory=set)  # recipients answered 550 at RCPT
    delay: float = 0.0  # seconds each DATA takes before the answer


class _Handler:
    def __init__(self, peer: SmtpPeer) -> None:
        self.peer = peer

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        if address in self.peer.script.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.peer.lock:
            self.peer.data_seen += 1
            reply = self.peer.script.data_replies.pop(0) if self.peer.script.data_replies else None
        if self.peer.script.delay:
            await asyncio.sleep(self.peer.script.delay)
        if reply == "drop":
            assert server.transport is not None
            server.transport.close()  # the connection dies before the answer to DATA
            return "250 never seen"
        if reply is not None:
            return reply
        raw = envelope.original_content or b""
        msg = message_from_bytes(raw)
        with self.peer.lock:
            self.peer.mails.append(Mail(tuple(envelope.rcpt_tos), str(msg["Message-ID"]), str(msg["X-Digestbot-Digest"]), time.monotonic()))
        return "250 2.0.0 queued"


class SmtpPeer:
    """An SMTP server on loopback that records the mail it accepts and follows a script."""

    def __init__(self, script: SmtpScript | None = None) -> None:
        self.script = script or SmtpScript()
        self.mails: list[Mail] = []
        self.data_seen = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        """The DIGESTBOT_SMTP_URL that reaches it."""
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def count(self) -> int:
        """How many messages it accepted so far."""
        with self.lock:
            return len(self.mails)


@dataclass
class Post:
    """One chat.postMessage the Slack peer accepted."""

    channel: str
    text: str
    digest: str
    ts: str
    at: float


class SlackPeer:
    """A Slack Web API server on loopback: chat.postMessage and conversations.history.

    `rate_limited` answers that many posts with 429 and `Retry-After`; `post_delay` makes posts slow.
    """

    def __init__(self, rate_limited: int = 0, retry_after: int = 2, post_delay: float = 0.0) -> None:
        self.posts: list[Post] = []
        self.rejected: list[float] = []  # when each 429 was answered
        self.history_calls = 0
        self.rate_limited = rate_limited
        self.retry_after = retry_after
        self.post_delay = post_delay
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The DIGESTBOT_SLACK_API_URL that reaches it."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        """How many posts it accepted so far."""
        with self.lock:
            return len(self.posts)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _args(self) -> dict[str, Any]:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else b""
                query = self.path.partition("?")[2]
                args: dict[str, Any] = {k: v[0] for k, v in parse_qs(query).items()}
                if "json" in (self.headers.get("Content-Type") or ""):
                    args.update(json.loads(body or b"{}"))
                else:
                    args.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
                return args

            def _answer(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                method = self.path.split("?")[0].rsplit("/", 1)[-1]
                args = self._args()
                if method == "chat.postMessage":
                    with peer.lock:
                        if peer.rate_limited > 0:
                            peer.rate_limited -= 1
                            peer.rejected.append(time.monotonic())
                            limited = True
                        else:
                            limited = False
                    if limited:
                        self._answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(peer.retry_after)})
                        return
                    if peer.post_delay:
                        time.sleep(peer.post_delay)
                    meta = args.get("metadata") or {}
                    if isinstance(meta, str):
                        meta = json.loads(meta)
                    digest = str((meta.get("event_payload") or {}).get("digest_id", ""))
                    with peer.lock:
                        ts = f"{1700000000 + len(peer.posts)}.000100"
                        peer.posts.append(Post(str(args.get("channel", "")), str(args.get("text", "")), digest, ts, time.monotonic()))
                    self._answer(200, {"ok": True, "channel": args.get("channel"), "ts": ts})
                elif method == "conversations.history":
                    channel = str(args.get("channel", ""))
                    with peer.lock:
                        peer.history_calls += 1
                        found = [p for p in reversed(peer.posts) if p.channel == channel]
                    with_meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
                    messages = [
                        {"type": "message", "ts": p.ts, "text": p.text,
                         **({"metadata": {"event_type": "digestbot_digest", "event_payload": {"digest_id": p.digest}}} if with_meta else {})}
                        for p in found[: int(args.get("limit", 100))]
                    ]
                    self._answer(200, {"ok": True, "messages": messages, "has_more": False})
                elif method == "auth.test":
                    self._answer(200, {"ok": True, "user_id": "UBOT", "bot_id": "BBOT"})
                else:
                    self._answer(200, {"ok": False, "error": "unknown_method"})

        return Handler


REPO = __import__("pathlib").Path(__file__).resolve().parent.parent
FEED = REPO / "examples" / "papers.xml"


def write_project(root: Any, subscribers: int, *, slack: bool = False, schedule: str = "0 8 * * *",
                  timezone: str = "UTC", database_url: str = "") -> Any:
    """A digestbot folder: digestbot.toml (the example feed), N subscriber files; returns the config path."""
    subs = root / "subscriptions"
    subs.mkdir(parents=True, exist_ok=True)
    for n in range(subscribers):
        dest = f'slack_channel = "C{n:05d}"' if slack else f'email = "reader{n:04d}@example.org"'
        (subs / f"s{n:04d}.toml").write_text(
            f'{dest}\nschedule = "{schedule}"\ntimezone = "{timezone}"\nmax_items = 3\n\n'
            '[interests]\nkeywords = ["quantization", "KV cache"]\n', encoding="utf-8")
    db = database_url or f"sqlite:///{root / 'digestbot.db'}"
    config = root / "digestbot.toml"
    config.write_text(
        f'database_url = "{db}"\nsubscriptions_dir = "subscriptions"\noutbox_dir = "outbox"\n\n'
        f'[smtp]\nrate = 10000\n\n[[sources]]\nname = "examples"\ntype = "file"\npath = "{FEED}"\n',
        encoding="utf-8")
    return config


def pg_schema_url() -> Any:
    """A context manager: a PostgreSQL URL on a fresh schema of DIGESTBOT_TEST_DATABASE_URL (skip if unset)."""
    import contextlib
    import os
    import uuid

    import pytest

    base = os.environ.get("DIGESTBOT_TEST_DATABASE_URL", "")
    if not base:
        pytest.skip("set DIGESTBOT_TEST_DATABASE_URL to a PostgreSQL URL to run the PostgreSQL tests")

    @contextlib.contextmanager
    def make() -> Any:
        from sqlalchemy import create_engine, text

        schema = f"t_sched_{uuid.uuid4().hex[:10]}"
        admin = create_engine(base)
        try:
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
        except Exception as e:  # noqa: BLE001 - any failure to reach the server means skip
            admin.dispose()
            pytest.skip(f"PostgreSQL at DIGESTBOT_TEST_DATABASE_URL is not usable here ({type(e).__name__})")
        sep = "&" if "?" in base else "?"
        try:
            yield f"{base}{sep}options=-csearch_path%3D{schema}&application_name={schema}", schema, admin
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()

    return make()
