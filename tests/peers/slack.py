"""The Slack peer: a loopback HTTP server that speaks enough of Slack's Web API (and a webhook).

chat.postMessage, conversations.history (with the digest metadata when asked for it, top-level
messages only, as Slack does), conversations.replies (a thread: its first message, then the
replies, oldest first, a page of at most `replies_max`, then a cursor), conversations.list, auth.test and an incoming webhook; for the
Slack app (issue 18): conversations.open (a member's DM), users.info (their time zone),
views.publish, views.open, oauth.v2.access (an install's code → its workspace and bot token) and
a `response_url` (`/response/…`), in the shapes of Slack's documented answers. A test
scripts the next answers of a method with `Reply`s — Slack's real bodies from
../shared/fixtures/slack/ (`Reply.fixture`) or its own; every request is recorded. A bot token
in `revoked` is refused on every Web API call (`token_revoked`), as Slack refuses a removed app's.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

SLACK_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "slack"
JSON = {"content-type": "application/json; charset=utf-8"}
OK_BODY: dict[
    str, Any
] = {  # the shape of Slack's documented answer (chat.postMessage__ok__slack_docs_example.json)
    "ok": True,
    "channel": "C123ABC456",
    "ts": "1503435956.000247",
    "message": {
        "text": "Here's a message for you",
        "username": "ecto1",
        "bot_id": "B123ABC456",
        "type": "message",
        "subtype": "bot_message",
        "ts": "1503435956.000247",
    },
}


@dataclass
class Reply:
    """One scripted HTTP answer: status, headers and body, or a dropped connection."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    drop: bool = False

    @classmethod
    def fixture(cls, name: str, status: int = 200) -> Reply:
        """A body from ../shared/fixtures/slack (`.json`) or a whole recorded response (`.http`)."""
        raw = (SLACK_FIXTURES / name).read_bytes()
        if name.endswith(".http"):
            head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
            lines = head.decode().splitlines()
            headers = dict(line.split(": ", 1) for line in lines[1:])
            headers.pop("connection", None)
            return cls(int(lines[0].split()[1]), body, headers)
        return cls(status, raw)

    @classmethod
    def ratelimited(cls, retry_after: int) -> Reply:
        """Slack's 429 with its Retry-After header."""
        return cls(
            429, b'{"ok":false,"error":"ratelimited"}', {**JSON, "retry-after": str(retry_after)}
        )


class SlackPeer:
    """A Slack Web API server on 127.0.0.1 that records every request and each accepted message.

    `requests`: {"method", "body", "auth", "at", "status"} per request; `posted`: {"ts", "channel",
    "text", "metadata", "thread_ts", "at"} per message accepted (a webhook's channel is "webhook").
    `post_delay` makes each chat.postMessage that long; `ok_body` is the answer a post gets.
    """

    def __init__(
        self,
        script: dict[str, list[Reply | None]] | None = None,
        *,
        post_delay: float = 0.0,
        ok_body: dict[str, Any] | None = None,
    ) -> None:
        # method (or "webhook") → its next answers (None: the usual answer, for that request)
        self.script: dict[str, list[Reply | None]] = script or {}
        self.requests: list[dict[str, Any]] = []
        self.posted: list[dict[str, Any]] = []
        self.channels = {
            "papers": "C0PAPERS01"
        }  # names conversations.list knows; a post to #papers lands in C0PAPERS01
        self.post_delay = post_delay
        self.delays: dict[str, float] = {}  # method → seconds it takes (unscripted answers)
        # The Slack app: bot token → team id (empty: any token is SLACK_BOT_TOKEN's "T0SINGLE"),
        # user → time zone, an install code → (team id, team name, bot token), the app's client.
        self.tokens: dict[str, str] = {}
        self.zones: dict[str, str] = {}
        self.codes: dict[str, tuple[str, str, str]] = {}
        self.enterprises: dict[
            str, str
        ] = {}  # team id → its Enterprise Grid's id (oauth.v2.access)
        self.dm_errors: dict[str, str] = {}  # user → the error conversations.open answers
        # Bot tokens Slack no longer takes (the app removed, the token revoked): every Web API
        # call made with one is answered {"ok": false, "error": "token_revoked"}.
        self.revoked: set[str] = set()
        self.client = ("", "")  # (client id, client secret) oauth.v2.access expects
        self.views: list[dict[str, Any]] = []  # views.publish / views.open bodies, with "method"
        self.responses: list[dict[str, Any]] = []  # what response_url received
        self.ok_body = ok_body or OK_BODY
        # conversations.replies' largest page (Slack caps `limit` at 15 for some apps since 2025)
        self.replies_max = 1000
        self.lock = threading.Lock()
        self._ts = 1503435956.000247
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                peer._handle(self)

            def do_POST(self) -> None:
                peer._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = (
            False  # a killed client's kept-alive connection must not hold up __exit__
        )
        base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{base}/api/"  # DIGESTBOT_SLACK_API_URL
        self.webhook_url = f"{base}/hooks/T000/B000/XXXX"
        self.response_url = f"{base}/response/T000/1234/abcd"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The requests made to one method, in order."""
        with self.lock:
            return [r for r in self.requests if r["method"] == method]

    def count(self) -> int:
        """How many messages it accepted so far."""
        with self.lock:
            return len(self.posted)

    @property
    def rejected(self) -> list[float]:
        """When each 429 was answered (time.monotonic())."""
        with self.lock:
            return [r["at"] for r in self.requests if r["status"] == 429]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        method = "webhook" if url.path.startswith("/hooks/") else url.path.rsplit("/", 1)[-1]
        if url.path.startswith("/response/"):
            method = "response_url"
        size = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(size) if size else b""
        if len(raw) < size:  # the client died mid-request (a SIGKILL test): Slack acts on nothing
            h.close_connection = True
            return
        body: dict[str, Any] = {}
        if raw and "json" in (h.headers.get("content-type") or ""):
            body = json.loads(raw)
        elif raw:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        body.update({k: v[0] for k, v in parse_qs(url.query).items()})
        auth = h.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        basic = (
            tuple(base64.b64decode(auth[6:]).decode().split(":", 1))
            if auth.startswith("Basic ")
            else ("", "")
        )
        request = {
            "method": method,
            "body": body,
            "auth": h.headers.get("authorization", ""),
            "at": time.monotonic(),
        }
        with self.lock:
            queue = self.script.get(method) or []
            scripted = queue.pop(0) if queue else None
        if scripted is None and method == "chat.postMessage" and self.post_delay:
            time.sleep(self.post_delay)
        if scripted is None and self.delays.get(method):
            time.sleep(self.delays[method])
        with self.lock:
            reply = scripted or self._default(method, body, token, basic)
            request["status"] = 0 if reply.drop else reply.status
            self.requests.append(request)
        if reply.drop:
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.send_response(reply.status)
        for k, v in reply.headers.items():
            h.send_header(k, v)
        h.send_header("content-length", str(len(reply.body)))
        h.end_headers()
        h.wfile.write(reply.body)

    def _default(
        self, method: str, body: dict[str, Any], token: str = "", basic: tuple[str, ...] = ()
    ) -> Reply:
        """The answer to an unscripted request (called under the lock)."""
        if token and token in self.revoked and method not in ("webhook", "response_url"):
            return _error("token_revoked")
        if method == "chat.postMessage":
            self._ts += 1
            ts = f"{self._ts:.6f}"
            channel = self.channels.get(
                str(body.get("channel", "")).lstrip("#"), str(body.get("channel", ""))
            )
            ok = json.loads(json.dumps(self.ok_body))
            ok.update(ts=ts, channel=channel)
            ok["message"]["ts"] = ts
            self._post(ts, channel, body)
            return Reply(200, json.dumps(ok).encode())
        if method == "conversations.history":
            with_meta = str(body.get("include_all_metadata", "")).lower() in ("1", "true")
            msgs = [
                self._message(p, with_meta)
                for p in reversed(self.posted)
                if p["channel"] == body.get("channel") and not p["thread_ts"]
            ]
            limit = int(body.get("limit", 100))
            return Reply(
                200, json.dumps({"ok": True, "messages": msgs[:limit], "has_more": False}).encode()
            )
        if method == "conversations.replies":
            return self._replies(body)
        if method == "conversations.list":
            chans = [{"id": i, "name": n} for n, i in self.channels.items()]
            return Reply(
                200,
                json.dumps(
                    {"ok": True, "channels": chans, "response_metadata": {"next_cursor": ""}}
                ).encode(),
            )
        if method == "auth.test":
            team = self._team(token)
            if team is None:
                return _error("invalid_auth")
            return _ok(
                url="https://lab.slack.com/",
                team="Lab",
                user="digestbot",
                team_id=team,
                user_id="UBOT",
                bot_id="BBOT",
            )
        if method in _APP_METHODS:
            return self._app(method, body, token, basic)
        if method == "webhook":
            self._post("", "webhook", body)
            return Reply(200, b"ok", {"content-type": "text/html"})
        return Reply(200, json.dumps({"ok": False, "error": "unknown_method"}).encode())

    def _message(self, p: dict[str, Any], with_meta: bool) -> dict[str, Any]:
        """A posted message as Slack's history shows it (a thread's first message with its
        `thread_ts` and `reply_count`, a reply with its `thread_ts`)."""
        m: dict[str, Any] = {"type": "message", "ts": p["ts"], "text": p["text"]}
        replies = sum(1 for q in self.posted if q["thread_ts"] == p["ts"])
        if p["thread_ts"]:
            m.update(thread_ts=p["thread_ts"], parent_user_id="UBOT")
        elif replies:
            m.update(thread_ts=p["ts"], reply_count=replies)
        if with_meta and p["metadata"]:
            m["metadata"] = p["metadata"]
        return m

    def _replies(self, body: dict[str, Any]) -> Reply:
        """conversations.replies: the message `ts` in `channel` and its thread, oldest first;
        pages of `limit` (at most `replies_max`), then `response_metadata.next_cursor`."""
        channel, ts = body.get("channel"), body.get("ts")
        if not channel or not ts:
            return _error("invalid_arguments")
        here = [p for p in self.posted if p["channel"] == channel]
        parent = next((p for p in here if p["ts"] == ts), None)
        if parent is None:
            return _error("thread_not_found")
        if parent["thread_ts"]:  # a reply's ts gives its whole thread, as Slack does
            ts = parent["thread_ts"]
            parent = next(p for p in here if p["ts"] == ts)
        with_meta = str(body.get("include_all_metadata", "")).lower() in ("1", "true")
        thread = [parent] + [p for p in here if p["thread_ts"] == ts]
        try:
            start = int(base64.b64decode(str(body.get("cursor") or "")).decode() or 0)
        except ValueError:
            return _error("invalid_cursor")
        size = max(1, min(int(body.get("limit") or 1000), self.replies_max))
        page = thread[start : start + size]
        more = start + size < len(thread)
        cursor = base64.b64encode(str(start + size).encode()).decode() if more else ""
        return _ok(
            messages=[self._message(p, with_meta) for p in page],
            has_more=more,
            response_metadata={"next_cursor": cursor},
        )

    def _team(self, token: str) -> str | None:
        """The team of the request's bot token (None: a token this peer does not know)."""
        if not self.tokens:
            return "T0SINGLE" if token else None
        return self.tokens.get(token)

    def _app(self, method: str, body: dict[str, Any], token: str, basic: tuple[str, ...]) -> Reply:
        """The Slack app's methods (called under the lock)."""
        if method == "response_url":
            self.responses.append(body)
            return Reply(200, b"ok", {"content-type": "text/html"})
        if method == "oauth.v2.access":
            if basic != self.client:
                return _error("invalid_client_id")
            if body.get("code") not in self.codes:
                return _error("invalid_code")
            team_id, team_name, token = self.codes.pop(str(body["code"]))
            self.tokens[token] = team_id
            return _ok(
                access_token=token,
                token_type="bot",
                scope="commands,chat:write,im:write,im:history,users:read",
                bot_user_id="U0KRQLJ9H",
                app_id="A0KRD7HC3",
                team={"name": team_name, "id": team_id},
                enterprise=(
                    {"id": self.enterprises[team_id], "name": "Grid"}
                    if team_id in self.enterprises
                    else None
                ),
                authed_user={"id": "U0INSTALL", "scope": "", "token_type": "user"},
                is_enterprise_install=False,
            )
        team = self._team(token)
        if team is None:
            return _error("not_authed" if not token else "invalid_auth")
        if method == "conversations.open":
            user = str(body.get("users", ""))
            if user in self.dm_errors:
                return _error(self.dm_errors[user])
            return _ok(channel={"id": f"D{team[1:5]}{user[1:]}"})
        if method == "users.info":
            user = str(body.get("user", ""))
            zone = self.zones.get(user, "America/Los_Angeles")
            return _ok(
                user={
                    "id": user,
                    "team_id": team,
                    "name": "spengler",
                    "deleted": False,
                    "real_name": "Egon Spengler",
                    "tz": zone,
                    "tz_label": zone,
                    "tz_offset": 0,
                    "is_bot": False,
                    "updated": 1502138686,
                }
            )
        view = body.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        if method == "views.open" and not body.get("trigger_id"):
            return _error("invalid_arguments")
        problems = _view_problems(view or {})
        if problems:  # Slack publishes nothing of a view that breaks a limit
            return Reply(
                200,
                json.dumps(
                    {
                        "ok": False,
                        "error": "invalid_arguments",
                        "response_metadata": {"messages": problems},
                    }
                ).encode(),
            )
        self.views.append({"method": method, "team": team, **body, "view": view})
        return _ok(
            view={
                "id": "VMHU10V25",
                "team_id": team,
                **(view or {}),
                "state": {"values": {}},
                "hash": "156772938.1827394",
                "root_view_id": "VMHU10V25",
                "app_id": "A0KRD7HC3",
                "bot_id": "BBOT",
            }
        )

    def _post(self, ts: str, channel: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata")
        if isinstance(meta, str):  # a form-encoded post carries its metadata as JSON text
            meta = json.loads(meta)
        self.posted.append(
            {
                "ts": ts,
                "channel": channel,
                "text": body.get("text"),
                "metadata": meta,
                "thread_ts": body.get("thread_ts"),
                "at": time.monotonic(),
            }
        )


_APP_METHODS = {
    "response_url",
    "oauth.v2.access",
    "conversations.open",
    "users.info",
    "views.publish",
    "views.open",
}


def _view_problems(view: dict[str, Any]) -> list[str]:
    """Slack's block limits a view breaks, in the words of its answer: at most 100 blocks, a
    section's text at most 3,000 characters, a header's 150."""
    blocks = view.get("blocks") or []
    problems = []
    if len(blocks) > 100:
        problems.append("[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]")
    for n, block in enumerate(blocks):
        most = {"section": 3000, "header": 150}.get(block.get("type"), 0)
        text = (block.get("text") or {}).get("text", "")
        if most and not 0 < len(text) <= most:
            problems.append(
                f"[ERROR] must be less than {most + 1} characters "
                f"[json-pointer:/view/blocks/{n}/text/text]"
            )
    return problems


def _ok(**fields: Any) -> Reply:
    return Reply(200, json.dumps({"ok": True, **fields}).encode())


def _error(code: str) -> Reply:
    return Reply(200, json.dumps({"ok": False, "error": code}).encode())
