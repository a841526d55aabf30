"""Signed tokens: round trip, forgery, wrong kind, expiry, the development key, itsdangerous's
format with a salt per kind, key rotation, canonical tokens and links already mailed."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from hashlib import sha256

import pytest
import time_machine
from itsdangerous import Signer

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
    assert head == '{"s":"web-1","t":1700000000}'  # the kind is in the signature's salt
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


# --- itsdangerous, canonical tokens, key rotation, links already mailed -----------------------


@pytest.mark.parametrize(
    "junk",
    [
        lambda t: t + "A",  # more base64 after the signature
        lambda t: t + "=",  # padding
        lambda t: t + "==",
        lambda t: t + "!",  # a character base64 decoding would skip
        lambda t: t + "%00",
        lambda t: t + ".",
        lambda t: t[:-1] + chr(ord(t[-1]) + 1),  # the signature's unused low bits set
        lambda t: t.replace(".", "=."),  # padding inside
    ],
)
def test_junk_after_or_inside_the_signature_does_not_verify(junk) -> None:  # type: ignore[no-untyped-def]
    """One spelling per token: the single-use record of confirm links hashes the token."""
    token = sign(S, "confirm", "web-1", chosen={"n": "x"})
    assert verify(S, token, "confirm")["subscriber_id"] == "web-1"
    assert junk(token) != token
    with pytest.raises(TokenError):
        verify(S, junk(token), "confirm")


def test_tokens_are_itsdangerous_signatures_with_a_salt_per_kind() -> None:
    token = sign(S, "manage", "alice", now=1_700_000_000)
    body = token.rpartition(".")[0]
    ours = Signer(
        S.secret_key, salt="digestbot.manage", key_derivation="hmac", digest_method=sha256
    )
    assert ours.sign(body).decode() == token
    for kind in tokens.KINDS:
        if kind != "manage":
            assert (
                Signer(
                    S.secret_key,
                    salt=f"digestbot.{kind}",
                    key_derivation="hmac",
                    digest_method=sha256,
                )
                .sign(body)
                .decode()
                != token
            )
            with pytest.raises(TokenError, match="for 'manage'"):
                verify(S, token, kind)


def test_key_rotation_signs_with_the_first_key_and_verifies_with_every_listed_one() -> None:
    old, new = Settings(secret_key="old-key-1"), Settings(secret_key="new-key-2, old-key-1")
    assert new.secret_keys == ("new-key-2", "old-key-1")
    assert Settings(secret_key=" a \n b,,c ").secret_keys == ("a", "b", "c")
    from_old = sign(old, "unsubscribe", "alice")
    assert verify(new, from_old, "unsubscribe")["subscriber_id"] == "alice"  # mail already sent
    from_new = sign(new, "unsubscribe", "bob")
    assert (
        verify(Settings(secret_key="new-key-2"), from_new, "unsubscribe")["subscriber_id"] == "bob"
    )
    with pytest.raises(TokenError, match="not made by this digestbot"):
        verify(old, from_new, "unsubscribe")  # signed with the first key, not the old one
    with pytest.raises(TokenError, match="not made by this digestbot"):
        verify(Settings(secret_key="new-key-2"), from_old, "unsubscribe")  # the old key dropped


def _old_format(key: str, payload: dict[str, object]) -> str:
    """A link as digestbot made them before itsdangerous: HMAC-SHA256 over the payload."""
    body = tokens._b64(json.dumps(payload, separators=(",", ":")).encode())
    mac = hmac.new(key.encode(), body.encode(), sha256).digest()
    return f"{body}.{tokens._b64(mac)}"


def test_links_in_mail_already_sent_keep_working_for_manage_unsubscribe_and_feedback() -> None:
    rotated = Settings(secret_key="new-key, " + S.secret_key)
    for kind in tokens.LEGACY_KINDS:
        old = _old_format(S.secret_key, {"k": kind, "s": "alice", "t": 1_700_000_000})
        assert verify(S, old, kind)["subscriber_id"] == "alice"
        assert verify(rotated, old, kind)["issued"] == 1_700_000_000
        with pytest.raises(TokenError):
            verify(S, old + "A", kind)
        other = "manage" if kind != "manage" else "unsubscribe"
        with pytest.raises(TokenError):
            verify(S, old, other)  # the kind inside the old payload still counts
    for kind in ("confirm", "csrf"):  # short-lived: not honoured in the old format
        old = _old_format(S.secret_key, {"k": kind, "s": "alice", "t": int(time.time())})
        with pytest.raises(TokenError):
            verify(S, old, kind)
    with pytest.raises(TokenError):
        verify(S, _old_format("another key", {"k": "manage", "s": "alice", "t": 1}), "manage")


def _hostile(payload: bytes, sig: str = "AAAA") -> str:
    return f"{tokens._b64(payload)}.{sig}"


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 3000,  # nested deeper than the JSON parser's recursion: RecursionError once
        b'{"s":' * 3000,
        b"\xff\xfe not UTF-8",
        b"not json",
    ],
)
def test_a_strangers_payload_is_refused_before_it_is_parsed(payload: bytes) -> None:
    """The signature is checked before the payload is decoded: every kind, the legacy ones too."""
    for kind in tokens.KINDS:
        with pytest.raises(TokenError, match="not made by this digestbot"):
            verify(S, _hostile(payload), kind)
    legacy_mac = tokens._b64(
        hmac.new(b"another key", tokens._b64(payload).encode(), sha256).digest()
    )
    with pytest.raises(TokenError, match="not made by this digestbot"):
        verify(S, _hostile(payload, legacy_mac), "manage")


def test_a_signed_payload_that_is_not_an_object_is_refused_as_damaged() -> None:
    signer = tokens._signer(S.secret_keys, "manage")
    for payload in (b"[" * 3000, b"\xff", b"[]"):
        token = signer.sign(tokens._b64(payload)).decode()
        with pytest.raises(TokenError):
            verify(S, token, "manage")
    old = _old_format(S.secret_key, {"k": "manage", "s": "alice", "t": 1})
    body, sig = old.split(".")
    deep = tokens._b64(b"[" * 3000)
    mac = tokens._b64(hmac.new(S.secret_key.encode(), deep.encode(), sha256).digest())
    with pytest.raises(TokenError, match="damaged"):
        verify(S, f"{deep}.{mac}", "manage")  # the old format: MAC first, then the payload
    assert verify(S, f"{body}.{sig}", "manage")["subscriber_id"] == "alice"
