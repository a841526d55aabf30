"""Configured values that need more than a type check: the SMTP URL, the base URL, the sender,
and whether email may go out with the links it carries. Each check returns the problem with its
fix (empty when fine), so `bot.config` reports it at load (and `check`) and the SMTP client says
the same words."""

from __future__ import annotations

import math
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import unquote, urlsplit

from .addresses import is_address

# Hosts the SMTP client and the link check count as this machine. Deliberately by name, not
# `ipaddress.is_loopback`: 127.0.0.2 & co. count as remote (the tests' stand-in for one).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

SMTP_URL_FIX = (
    "write smtp://user@host:587 (STARTTLS), smtps://host:465 (TLS) or smtp://127.0.0.1:2525 (plain)"
)


def mask_url(url: str) -> str:
    """A URL fit for logs: any password in it replaced by ***."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


@dataclass(frozen=True, slots=True)
class SmtpUrl:
    """DIGESTBOT_SMTP_URL taken apart."""

    host: str
    port: int
    tls: bool  # smtps://: TLS from the start
    user: str

    @property
    def loopback(self) -> bool:
        """Whether the server is on this machine."""
        return self.host.lower() in LOOPBACK_HOSTS


def parse_smtp_url(url: str) -> SmtpUrl:
    """The parts of an SMTP URL; `ValueError` naming the URL as written (password masked) and
    the fix when it is none."""
    shown = repr(mask_url(url))
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"{shown} is not an SMTP URL; {SMTP_URL_FIX}")
    tls = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if tls else 587)
    except ValueError as e:
        raise ValueError(f"{shown} has a bad port ({e}); write e.g. smtp://user@host:587") from e
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{shown} has more than a host and port; {SMTP_URL_FIX}")
    return SmtpUrl(parts.hostname, port, tls, unquote(parts.username or ""))


def smtp_url_problem(url: str) -> str:
    """What is wrong with an SMTP URL (empty: nothing; an empty URL means no SMTP)."""
    if not url:
        return ""
    try:
        parse_smtp_url(url)
    except ValueError as e:
        return str(e)
    return ""


def base_url_problem(url: str) -> str:
    """What is wrong with the base URL of the links in digests (empty: nothing)."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018  # raises on a bad port
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in url:
        return (
            f"{url!r} is not an http(s) URL; write where `digestbot serve` is reached, "
            "e.g. https://digest.example.org"
        )
    return ""


def sender_problem(sender: str) -> str:
    """What is wrong with the From of email digests (empty: nothing)."""
    _name, addr = parseaddr(sender)
    if not is_address(addr, dotted=False):
        return f"{sender!r} is not an address; write e.g. 'Lab digest <digest@example.org>'"
    return ""


def rate_problem(rate: float) -> str:
    """What is wrong with a messages-per-second rate (empty: nothing; 0 means no limit)."""
    if rate < 0:
        return f"{rate:g} is negative; write messages per second, e.g. rate = 10 (0: no limit)"
    if not math.isfinite(rate):  # TOML's nan and inf: nan < 0 is false, and no wait is infinite
        return (
            f"{rate:g} is not a number of messages per second; write e.g. rate = 10 (0: no limit)"
        )
    return ""


def link_host_is_local(base_url: str) -> bool:
    """Whether the links in digests point at this machine (nobody else can open them)."""
    host = (urlsplit(base_url).hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.") or host in ("0.0.0.0", "")


def sending_problem(
    smtp_url: str, base_url: str, secret_key: str, local_links_ok: bool = False
) -> tuple[str, str]:
    """(key, problem with its fix) when email must not go out to the configured SMTP server:
    a server off this machine (real recipients) while the digests' links point at this machine
    or are signed with no secret key. ("", "") when mail may go out.

    `local_links_ok` (DIGESTBOT_LOCAL_LINKS=1): a trial whose server is a mail catcher, whose
    links are opened on this machine (deploy/compose.yaml with Mailpit).
    """
    try:
        server = parse_smtp_url(smtp_url) if smtp_url else None
    except ValueError:
        return "", ""  # reported as a bad URL
    if server is None or server.loopback:
        return "", ""
    if not secret_key:
        return "DIGESTBOT_SECRET_KEY", (
            f"unset, so the feedback and unsubscribe links in mail to {server.host} could be "
            "forged; set it to a long random string, e.g. "
            "DIGESTBOT_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if link_host_is_local(base_url) and not local_links_ok:
        return "base_url", (
            f"{base_url!r} points at this machine, so the unsubscribe and 👍/👎 links in mail to "
            f"{server.host} would be dead; set base_url (or DIGESTBOT_BASE_URL) to where "
            "`digestbot serve` is reached, e.g. https://digest.example.org (for a trial with a "
            "mail catcher: DIGESTBOT_LOCAL_LINKS=1)"
        )
    return "", ""
