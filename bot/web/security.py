"""CSRF tokens, rate-limit keys and Slack request signatures."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from slack_sdk.signature import Clock, SignatureVerifier

from .. import tokens
from ..config import Settings
from ..tokens import TokenError

CSRF_COOKIE = "digestbot_csrf"
CSRF_FIELD = "csrf"
CSRF_MAX_AGE = 24 * 3600  # a form left open longer than a day must be reloaded
SLACK_MAX_SKEW = 5 * 60  # Slack's advice: refuse requests more than five minutes old


def new_csrf(settings: Settings) -> str:
    """A fresh signed CSRF token (signed double submit: the same value in a cookie and the form)."""
    return tokens.sign(settings, "csrf", secrets.token_urlsafe(16))


def csrf_valid(settings: Settings, token: str | None) -> bool:
    """Whether `token` is a CSRF token this digestbot signed within the last day."""
    if not token:
        return False
    try:
        tokens.verify(settings, token, "csrf", max_age=CSRF_MAX_AGE)
    except TokenError:
        return False
    return True


def csrf_ok(settings: Settings, cookie: str | None, submitted: str | None) -> bool:
    """A form post is genuine: the cookie and the form field hold the same valid signed token."""
    if not cookie or not submitted or not hmac.compare_digest(cookie, submitted):
        return False
    return csrf_valid(settings, cookie)


def rate_key(settings: Settings, kind: str, value: str) -> str:
    """A keyed hash standing for an address or a client in the rate-limit table (never stored raw)."""
    key = (settings.secret_keys or (tokens.DEV_KEY,))[0].encode()
    return (
        f"{kind}:" + hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()[:40]
    )


def slack_headers_ok(
    signing_secret: str, timestamp: str | None, signature: str | None, now: float | None = None
) -> tuple[bool, str]:
    """What can be checked before reading the body: a secret, both headers, a fresh timestamp."""
    if not signing_secret.strip():
        return False, "SLACK_SIGNING_SECRET is not set"
    if not timestamp or not signature:
        return False, "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    if not (timestamp.isascii() and timestamp.isdecimal() and len(timestamp) <= 12):
        return False, "bad timestamp"
    if abs((time.time() if now is None else now) - int(timestamp)) > SLACK_MAX_SKEW:
        return False, "stale timestamp (more than five minutes off)"
    return True, ""


def slack_signature_ok(
    signing_secret: str,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    now: float | None = None,
) -> tuple[bool, str]:
    """Check Slack's headers, then `X-Slack-Signature` over the body with slack_sdk's verifier."""
    ok, why = slack_headers_ok(signing_secret, timestamp, signature, now)
    if not ok:
        return ok, why
    clock = _Clock(time.time() if now is None else now)
    verifier = SignatureVerifier(signing_secret, clock=clock)
    if not verifier.is_valid(body=body, timestamp=str(timestamp), signature=str(signature)):
        return False, "bad signature"
    return True, ""


class _Clock(Clock):
    """slack_sdk's verifier checks the timestamp against its clock: ours (tests move it)."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now
