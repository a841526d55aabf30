"""Signed tokens: round trip, forgery, wrong kind, expiry, nonces, the development key."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from bot import tokens
from bot.config import Settings
from bot.tokens import TokenError, sign, verify

S = Settings(secret_key="k" * 32)


def _payload(token: str) -> dict[str, object]:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def test_round_trip_carries_subscriber_entry_and_digest() -> None:
    token = sign(S, "feedback", "alice", "arxiv:2401.12345", "alice.20260101T0800Z")
    body = verify(S, token, "feedback")
    assert (body["kind"], body["subscriber_id"], body["entry_id"], body["digest_id"]) == (
        "feedback",
        "alice",
        "arxiv:2401.12345",
        "alice.20260101T0800Z",
    )
    assert "=" not in token and "/" not in token and "+" not in token  # fits a URL path segment


def test_payload_is_compact_json() -> None:
    token = sign(S, "unsubscribe", "web-1", now=1_700_000_000)
    head = base64.urlsafe_b64decode(token.split(".")[0] + "==").decode()
    assert head == '{"k":"unsubscribe","s":"web-1","t":1700000000}'
    assert (
        sign(S, "unsubscribe", "web-1", now=1_700_000_000) == token
    )  # the same digest renders the same links


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"),  # the MAC changed
        lambda t: (
            base64.urlsafe_b64encode(
                json.dumps({**_payload(t), "s": "mallory"}, separators=(",", ":")).encode()
            )
            .rstrip(b"=")
            .decode()
            + "."
            + t.split(".")[1]
        ),
        lambda t: t.split(".")[0],  # no MAC at all
        lambda t: "not a token",
        lambda t: "%%%." + t.split(".")[1],
        lambda t: "",
    ],
)
def test_forged_or_malformed_tokens_are_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    token = sign(S, "unsubscribe", "alice")
    with pytest.raises(TokenError):
        verify(S, mangle(token), "unsubscribe")


def test_another_key_refuses() -> None:
    token = sign(S, "manage", "alice")
    with pytest.raises(TokenError, match="not made by this digestbot"):
        verify(Settings(secret_key="other"), token, "manage")


def test_wrong_kind_is_refused() -> None:
    token = sign(S, "manage", "alice")
    with pytest.raises(TokenError, match="not 'unsubscribe'"):
        verify(S, token, "unsubscribe")


def test_expiry() -> None:
    with time_machine.travel(datetime.now(UTC) - timedelta(days=3), tick=False):
        old = sign(S, "confirm", "web-1")
    assert verify(S, old, "confirm")["subscriber_id"] == "web-1"  # no max_age: no expiry
    assert verify(S, old, "confirm", max_age=4 * 86400)["subscriber_id"] == "web-1"
    with pytest.raises(TokenError, match="expired"):
        verify(S, old, "confirm", max_age=2 * 86400)


def test_development_key_warns_once_and_logs_no_secret(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "_warned", False)
    dev = Settings()
    with caplog.at_level(logging.WARNING, logger="bot.tokens"):
        token = sign(dev, "manage", "alice")
        verify(dev, token, "manage")
    warnings = [r for r in caplog.records if "DIGESTBOT_SECRET_KEY is not set" in r.getMessage()]
    assert len(warnings) == 1
    assert tokens.DEV_KEY not in caplog.text
    with pytest.raises(TokenError):  # a development token does not open a production install
        verify(S, token, "manage")
