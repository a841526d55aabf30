"""The VERP return path of an email digest: `bounces+<subscriber>-<signature>@<domain>`.

A delivery status notification goes back to the envelope sender, so the address it is sent to
names the subscriber; the name is signed, so a forged bounce names no one.

The token is the subscriber id in base32 and 80 bits of an HMAC-SHA256 over it (keyed by
DIGESTBOT_SECRET_KEY, every listed key accepted), lower case: a mail system that changes the
case of a local part breaks nothing, and for ids up to 20 characters (files like `alice`, web
subscribers `web-0123456789`) the local part stays within RFC 5321's 64 octets. A longer id gets
the long signed token of bot.tokens (kind "bounce"), which the bounce reader also still accepts
from digests sent before this form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from ..config import Settings
from ..errors import TokenError
from ..tokens import sign, signing_keys, verify

KIND = "bounce"
MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1: octets in a local part
_MAC_BYTES = 10  # 80 bits: 16 base32 characters
_LONG = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")  # bot.tokens' body.signature
_SHORT = re.compile(r"(?P<name>[a-z2-7]+)-(?P<mac>[a-z2-7]{16})", re.IGNORECASE)
_VERP = re.compile(r"^(?P<local>[^+@\s<>]+)\+(?P<token>[A-Za-z0-9_.-]+)@(?P<domain>[^@\s<>]+)$")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def _mac(key: str, subscriber_id: str) -> str:
    digest = hmac.new(key.encode(), f"digestbot.{KIND}:{subscriber_id}".encode(), hashlib.sha256)
    return _b32(digest.digest()[:_MAC_BYTES])


def return_path(settings: Settings, subscriber_id: str) -> str:
    """The envelope sender of `subscriber_id`'s digests, or "" when [bounces] address is unset."""
    local, at, domain = settings.bounce_address.strip().rpartition("@")
    if not at or not local or not domain:
        return ""
    key = signing_keys(settings)[0]
    short = f"{_b32(subscriber_id.encode())}-{_mac(key, subscriber_id)}"
    if len(f"{local}+{short}") <= MAX_LOCAL:
        return f"{local}+{short}@{domain}"
    return f"{local}+{sign(settings, KIND, subscriber_id)}@{domain}"


def token_of(address: str) -> str:
    """The token in a VERP address (`bounces+TOKEN@domain`, angle brackets allowed), or ""."""
    found = _VERP.match(address.strip().strip("<>").strip())
    if not found:
        return ""
    token = found.group("token")
    return token if _SHORT.fullmatch(token) or _LONG.fullmatch(token) else ""


def subscriber_of(settings: Settings, address: str) -> str:
    """The subscriber a VERP address names; `TokenError` when it holds no token or a forged one."""
    token = token_of(address)
    if not token:
        raise TokenError(f"{address!r} is no VERP return path (bounces+TOKEN@domain)")
    short = _SHORT.fullmatch(token)
    if short is None:
        sid = str(verify(settings, token, KIND)["subscriber_id"])
    else:
        sid = _short_subscriber(settings, short.group("name"), short.group("mac"))
    if not sid:
        raise TokenError("the bounce token names no subscriber")
    return sid


def _short_subscriber(settings: Settings, name: str, mac: str) -> str:
    try:
        padded = name.upper() + "=" * (-len(name) % 8)
        sid = base64.b32decode(padded).decode()
    except (ValueError, UnicodeDecodeError) as e:
        raise TokenError("the bounce token is damaged") from e
    given = mac.lower()
    if not any(hmac.compare_digest(_mac(k, sid), given) for k in signing_keys(settings)):
        raise TokenError("the bounce token's signature does not match (forged, or another key)")
    return sid
