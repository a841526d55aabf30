"""Signed tokens for the links in digests and on the web: HMAC-SHA256 over a compact JSON payload."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any

from .config import Settings
from .errors import BotError

log = logging.getLogger(__name__)

# Used when DIGESTBOT_SECRET_KEY is unset, so a development setup works; links signed with it
# can be forged by anyone who reads this file, hence the warning.
DEVELOPMENT_KEY = "digestbot-development-key-not-secret"
SINGLE_USE = frozenset({"confirm"})  # kinds that carry a nonce the store records once used
_warned = False


class TokenError(BotError):
    """A token that is malformed, forged, of the wrong kind or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(settings: Settings) -> bytes:
    global _warned
    if settings.secret_key:
        return settings.secret_key.encode()
    if not _warned:
        _warned = True
        log.warning("DIGESTBOT_SECRET_KEY is not set: links are signed with a fixed development key "
                    "anyone can forge; set DIGESTBOT_SECRET_KEY to a long random string")
    return DEVELOPMENT_KEY.encode()


def _mac(settings: Settings, payload: bytes) -> bytes:
    return hmac.new(_key(settings), payload, hashlib.sha256).digest()


def sign(settings: Settings, kind: str, subscriber_id: str, entry_id: str = "", digest_id: str = "") -> str:
    """A token for `kind` (unsubscribe, manage, feedback, confirm …) about one subscriber."""
    body: dict[str, Any] = {"k": kind, "s": subscriber_id, "e": entry_id, "d": digest_id, "t": int(time.time())}
    if kind in SINGLE_USE:
        body["n"] = secrets.token_urlsafe(12)
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return f"{_b64(payload)}.{_b64(_mac(settings, payload))}"


def verify(settings: Settings, token: str, kind: str, max_age: float | None = None) -> dict[str, Any]:
    """The payload of a genuine token of `kind`, at most `max_age` seconds old; else `TokenError`."""
    head, dot, tail = token.partition(".")
    if not dot or not head or not tail:
        raise TokenError("malformed link; copy the whole link from the message")
    try:
        payload, mac = _unb64(head), _unb64(tail)
    except (binascii.Error, ValueError) as e:
        raise TokenError("malformed link; copy the whole link from the message") from e
    if not hmac.compare_digest(mac, _mac(settings, payload)):
        raise TokenError("this link was not issued by this digestbot (bad signature); use the link from your latest message")
    try:
        body = json.loads(payload)
    except ValueError as e:
        raise TokenError("malformed link payload; use the link from your latest message") from e
    if not isinstance(body, dict) or not isinstance(body.get("s"), str) or not isinstance(body.get("t"), int):
        raise TokenError("malformed link payload; use the link from your latest message")
    if body.get("k") != kind:
        raise TokenError(f"this link is not a {kind} link; use the right link from the message")
    if max_age is not None and time.time() - body["t"] > max_age:
        raise TokenError("this link has expired; ask for a new one")
    body.setdefault("e", "")
    body.setdefault("d", "")
    return body
