"""The VERP return path of an email digest: `bounces+<signed subscriber token>@<domain>`.

A delivery status notification goes back to the envelope sender, so the address it is sent to
names the subscriber; the token is signed (bot.tokens, kind "bounce"), so a forged bounce names
no one.
"""

from __future__ import annotations

import re

from ..config import Settings
from ..errors import TokenError
from ..tokens import sign, verify

KIND = "bounce"
_VERP = re.compile(
    r"^(?P<local>[^+@\s<>]+)\+(?P<token>[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)@(?P<domain>[^@\s<>]+)$"
)


def return_path(settings: Settings, subscriber_id: str) -> str:
    """The envelope sender of `subscriber_id`'s digests, or "" when [bounces] address is unset."""
    local, at, domain = settings.bounce_address.strip().rpartition("@")
    if not at or not local or not domain:
        return ""
    return f"{local}+{sign(settings, KIND, subscriber_id)}@{domain}"


def token_of(address: str) -> str:
    """The token in a VERP address (`bounces+TOKEN@domain`, angle brackets allowed), or ""."""
    found = _VERP.match(address.strip().strip("<>").strip())
    return found.group("token") if found else ""


def subscriber_of(settings: Settings, address: str) -> str:
    """The subscriber a VERP address names; `TokenError` when it holds no token or a forged one."""
    token = token_of(address)
    if not token:
        raise TokenError(f"{address!r} is no VERP return path (bounces+TOKEN@domain)")
    sid = str(verify(settings, token, KIND)["subscriber_id"])
    if not sid:
        raise TokenError("the bounce token names no subscriber")
    return sid
