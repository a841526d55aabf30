"""Shared by the Slack app tests: the web app under uvicorn beside the Slack peer, and requests
signed as Slack signs them (v0 HMAC-SHA256 of "v0:<timestamp>:<body>")."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import requests
from peers import SlackPeer, free_port
from web_support import running

from bot.config import Settings
from bot.store import Store
from bot.web import create_app

SECRET = "slack-signing-secret-for-tests"
SINGLE = "T0SINGLE"  # the team the peer gives SLACK_BOT_TOKEN (auth.test)


@dataclass
class SlackApp:
    """`digestbot serve`'s app on loopback, its store and the Slack peer it talks to."""

    url: str
    settings: Settings
    store: Store
    peer: SlackPeer

    def signed(
        self, path: str, body: bytes, *, ts: int | None = None, secret: str = SECRET, **kw: str
    ) -> requests.Response:
        """POST `body` to `path` with Slack's signature headers."""
        stamp = str(int(time.time()) if ts is None else ts)
        sig = (
            "v0="
            + hmac.new(
                secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256
            ).hexdigest()
        )
        kind = kw.pop("content_type", "application/x-www-form-urlencoded")
        return requests.post(
            self.url + path,
            data=body,
            headers={
                "Content-Type": kind,
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": sig,
            },
            timeout=10,
        )

    def command(
        self, text: str, user: str = "U0ALICE", team: str = SINGLE, **extra: str
    ) -> requests.Response:
        """A signed `/papers TEXT` from (team, user), as Slack posts it."""
        form = {
            "token": "deprecated",
            "team_id": team,
            "team_domain": "lab",
            "channel_id": "C0PAPERS01",
            "user_id": user,
            "user_name": "alice",
            "command": "/papers",
            "text": text,
            "api_app_id": "A0KRD7HC3",
            "response_url": self.peer.response_url,
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
            **extra,
        }
        return self.signed("/slack/commands", urlencode(form).encode())

    def event(self, payload: dict[str, object]) -> requests.Response:
        """A signed Events API request."""
        return self.signed(
            "/slack/events", json.dumps(payload).encode(), content_type="application/json"
        )

    def interact(self, payload: dict[str, object]) -> requests.Response:
        """A signed interactivity request (buttons, modal submissions)."""
        return self.signed("/slack/actions", urlencode({"payload": json.dumps(payload)}).encode())


def settings_for(db_url: str, peer: SlackPeer, port: int, **environ: str) -> Settings:
    """Settings of a digestbot with the Slack app: signing secret, the peer as Slack's API."""
    return Settings(
        database_url=db_url,
        base_url=f"http://127.0.0.1:{port}",
        secret_key="test-secret-key",
        slack_api_url=peer.url,
        slack_token=environ.pop("SLACK_BOT_TOKEN", "xoxb-single"),
        environ={"SLACK_SIGNING_SECRET": SECRET, **environ},
    )


@contextmanager
def slack_app(db_url: str, peer: SlackPeer, **environ: str) -> Iterator[SlackApp]:
    """The app with its own store on `db_url`, served until the block ends."""
    port = free_port()
    settings = settings_for(db_url, peer, port, **environ)
    store = Store(db_url)
    try:
        with running(create_app(settings, store), port) as url:
            yield SlackApp(url, settings, store, peer)
    finally:
        store.close()


def wait_until(check: object, timeout: float = 10.0) -> None:
    """Poll `check()` until it is true (the work Slack's answer leaves for after it)."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)
