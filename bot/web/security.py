"""CSRF tokens, rate-limit keys and Slack request signatures."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

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
    key = (settings.secret_key or tokens.DEV_KEY).encode()
    return (
        f"{kind}:" + hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()[:40]
    )


def slack_signature_ok(
    signing_secret: str,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    now: float | None = None,
) -> tuple[bool, str]:
    """Check Slack's `X-Slack-Signature` over `v0:{timestamp}:{body}`; return (ok, why not)."""
    if not signing_secret:
        return False, "SLACK_SIGNING_SECRET is not set"
    if not timestamp or not signature:
        return False, "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    try:
        ts = int(timestamp)
    except ValueError:
        return False, "bad timestamp"
    if abs((time.time() if now is None else now) - ts) > SLACK_MAX_SKEW:
        return False, "stale timestamp (more than five minutes off)"
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return False, "bad signature"
    return True, ""
