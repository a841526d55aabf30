"""Signed tokens for the links in a digest (unsubscribe, feedback, manage): HMAC-SHA256, base64url."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any

from .config import Settings
from .errors import TokenError

__all__ = ["DEV_KEY", "TokenError", "sign", "verify"]  # TokenError: defined with the other errors
log = logging.getLogger(__name__)

# Used only when DIGESTBOT_SECRET_KEY is unset (development): anyone can forge links made with it.
DEV_KEY = "digestbot-development-key-set-DIGESTBOT_SECRET_KEY"
_warned = False


def _key(settings: Settings) -> bytes:
    global _warned
    if settings.secret_key:
        return settings.secret_key.encode()
    if not _warned:
        log.warning(
            "DIGESTBOT_SECRET_KEY is not set: links are signed with a public development key; set it in production"
        )
        _warned = True
    return DEV_KEY.encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(
    settings: Settings,
    kind: str,
    subscriber_id: str,
    entry_id: str = "",
    digest_id: str = "",
    now: float | None = None,
) -> str:
    """A URL-safe token naming what a link does (`kind`) and for whom, signed with the secret key."""
    payload: dict[str, Any] = {
        "k": kind,
        "s": subscriber_id,
        "t": int(time.time() if now is None else now),
    }
    if entry_id:
        payload["e"] = entry_id
    if digest_id:
        payload["d"] = digest_id
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    mac = hmac.new(_key(settings), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(
    settings: Settings,
    token: str,
    kind: str,
    max_age: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload of a token made by `sign` for `kind`; `TokenError` when bad, forged or expired.

    The payload has `kind`, `subscriber_id`, `entry_id`, `digest_id` and `issued` (Unix seconds).
    """
    body, dot, mac = token.partition(".")
    if not dot or not body or not mac:
        raise TokenError("this link is incomplete; copy the whole link from the digest")
    expected = hmac.new(_key(settings), body.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(mac)
        raw = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError) as e:
        raise TokenError("this link is damaged; copy the whole link from the digest") from e
    if not hmac.compare_digest(expected, given) or not isinstance(raw, dict):
        raise TokenError(
            "this link was not made by this digestbot; use a link from a recent digest"
        )
    if raw.get("k") != kind:
        raise TokenError(
            f"this link is for {raw.get('k')!r}, not {kind!r}; use the matching link from the digest"
        )
    issued = int(raw.get("t", 0))
    if max_age is not None and (time.time() if now is None else now) - issued > max_age:
        raise TokenError("this link has expired; use the link in a more recent digest")
    return {
        "kind": kind,
        "subscriber_id": str(raw.get("s", "")),
        "entry_id": str(raw.get("e", "")),
        "digest_id": str(raw.get("d", "")),
        "issued": issued,
    }
