"""Signed tokens for the links digestbot mails (manage, unsubscribe, feedback, confirm, view,
feed) and CSRF.

A token is `<payload>.<signature>`: the payload is base64url JSON, the signature itsdangerous's
HMAC-SHA256 with a salt per kind of link (a token for one kind never verifies as another) and
key rotation: DIGESTBOT_SECRET_KEY lists keys newest first (separated by commas or whitespace);
new tokens are signed with the first, tokens signed with any listed key still verify.

Tokens are canonical: one spelling per token (strict base64url, no padding, nothing after the
signature), so the hash of a token is a sound single-use record. The signature is checked before
the payload is parsed: a stranger's JSON is never read.

Links made before itsdangerous (one HMAC-SHA256 over the payload, with the kind inside it) are
still honoured for manage, unsubscribe and feedback (links in mail already sent); not for confirm
(they carry no chosen settings) nor CSRF (a reload makes a new one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from itsdangerous import BadSignature, Signer

from .config import Settings
from .errors import TokenError

__all__ = [
    "DEV_KEY",
    "KINDS",
    "TokenError",
    "sign",
    "signing_keys",
    "verify",
]  # TokenError: with the other errors
log = logging.getLogger(__name__)

# Used only when DIGESTBOT_SECRET_KEY is unset (development): anyone can forge links made with it;
# `digestbot serve` refuses to run with it unless everything is on this machine.
DEV_KEY = "digestbot-development-key-set-DIGESTBOT_SECRET_KEY"
KINDS = (
    "manage",
    "unsubscribe",
    "feedback",
    "confirm",
    "csrf",
    "bounce",
    "view",
    "feed",
)  # bounce: the VERP return path; view: a digest on the web (/digest/…); feed: the Atom feed
LEGACY_KINDS = ("manage", "unsubscribe", "feedback")  # links of the old format still honoured
_PART = re.compile(r"[A-Za-z0-9_-]+")
_warned = False


def signing_keys(settings: Settings) -> tuple[str, ...]:
    """The keys links are checked with, the one new links are signed with first (the
    development key when DIGESTBOT_SECRET_KEY is unset, with its warning)."""
    global _warned
    if settings.secret_keys:
        return settings.secret_keys
    if not _warned:
        log.warning(
            "DIGESTBOT_SECRET_KEY is not set: links are signed with a public development key; set it in production"
        )
        _warned = True
    return (DEV_KEY,)


def _signer(keys: tuple[str, ...], kind: str) -> Signer:
    # itsdangerous wants the keys oldest first and signs with the last one.
    return Signer(
        list(reversed(keys)),
        salt=f"digestbot.{kind}",
        key_derivation="hmac",
        digest_method=hashlib.sha256,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict base64url without padding: one spelling per value (ValueError otherwise)."""
    if not _PART.fullmatch(text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # unused low bits set: another spelling of the same bytes
        raise ValueError("not canonical base64url")
    return data


def sign(
    settings: Settings,
    kind: str,
    subscriber_id: str,
    entry_id: str = "",
    digest_id: str = "",
    now: float | None = None,
    chosen: Mapping[str, Any] | None = None,
    address: str = "",
) -> str:
    """A URL-safe token naming what a link does (`kind`) and for whom, signed with the first key.

    `chosen`: what the link stands for beyond the subscriber (a confirmation link carries the
    settings the request chose, so confirming applies those and nothing a stranger sent later).
    """
    if kind not in KINDS:
        raise TokenError(f"no such kind of link {kind!r}; the kinds are {', '.join(KINDS)}")
    payload: dict[str, Any] = {"s": subscriber_id, "t": int(time.time() if now is None else now)}
    if entry_id:
        payload["e"] = entry_id
    if digest_id:
        payload["d"] = digest_id
    if chosen is not None:
        payload["c"] = dict(chosen)
    if address:  # the address the link was mailed to: it controls that address's subscription only
        payload["a"] = address
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    return _signer(signing_keys(settings), kind).sign(body).decode()


def verify(
    settings: Settings,
    token: str,
    kind: str,
    max_age: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload of a token made by `sign` for `kind`; `TokenError` when bad, forged or expired.

    The payload has `kind`, `subscriber_id`, `entry_id`, `digest_id`, `issued` (Unix seconds) and,
    when the token carries them, `chosen` (a dict) and `address` (the address it was mailed to).
    """
    body, dot, sig = token.rpartition(".")
    if not dot or not body or not sig:
        raise TokenError("this link is incomplete; copy the whole link from the digest")
    try:
        data = _unb64(body)
        _unb64(sig)
    except ValueError as e:
        raise TokenError("this link is damaged; copy the whole link from the digest") from e
    keys = signing_keys(settings)
    # The signature first: the payload is parsed only once this digestbot is known to have made
    # it (a stranger's payload, such as JSON nested thousands deep, is never parsed).
    legacy = not _signed(keys, kind, body, sig)
    if legacy and not _legacy(keys, kind, body, sig):
        other = next((k for k in KINDS if k != kind and _signed(keys, k, body, sig)), None)
        if other is not None:
            raise TokenError(
                f"this link is for {other!r}, not {kind!r}; use the matching link from the digest"
            )
        raise TokenError(
            "this link was not made by this digestbot; use a link from a recent digest"
        )
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise TokenError("this link is damaged; copy the whole link from the digest") from e
    if not isinstance(raw, dict) or (legacy and raw.get("k") != kind):
        # legacy: the old HMAC did not cover the kind, the payload named it
        raise TokenError(
            "this link was not made by this digestbot; use a link from a recent digest"
        )
    issued = int(raw.get("t", 0))
    if max_age is not None and (time.time() if now is None else now) - issued > max_age:
        raise TokenError("this link has expired; use the link in a more recent digest")
    payload: dict[str, Any] = {
        "kind": kind,
        "subscriber_id": str(raw.get("s", "")),
        "entry_id": str(raw.get("e", "")),
        "digest_id": str(raw.get("d", "")),
        "issued": issued,
    }
    if isinstance(raw.get("c"), dict):
        payload["chosen"] = raw["c"]
    if isinstance(raw.get("a"), str):
        payload["address"] = raw["a"]
    return payload


def _signed(keys: tuple[str, ...], kind: str, body: str, sig: str) -> bool:
    try:
        _signer(keys, kind).unsign(f"{body}.{sig}")
    except BadSignature:
        return False
    return True


def _legacy(keys: tuple[str, ...], kind: str, body: str, sig: str) -> bool:
    """A link in mail sent before itsdangerous: HMAC-SHA256(key, payload), the kind inside the
    payload (which the caller checks once the MAC holds)."""
    if kind not in LEGACY_KINDS:
        return False
    try:
        given = _unb64(sig)
    except (ValueError, binascii.Error):
        return False
    return any(
        hmac.compare_digest(hmac.new(k.encode(), body.encode(), hashlib.sha256).digest(), given)
        for k in keys
    )
