"""What a client may send and who it is: the request body cap, trusted proxies, rate-limit keys."""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ConfigError

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024  # no form of ours (nor a Slack button click) is bigger
IPV6_PREFIX = 64  # one IPv6 client: its /64 (a home or a host gets a whole /64 to pick from)
_TOO_LARGE = b"request too large\n"


class _TooLarge(Exception):
    """Raised into the app when the body passes the cap (the middleware answers 413)."""


class BodyCap:
    """ASGI middleware: refuse every request body larger than `limit` bytes while it streams.

    A Content-Length over the cap is refused before anything is read; a chunked body is counted
    as it arrives and the app gets a 413 the moment it passes the cap: nothing beyond `limit` is
    handed to the app or kept, and the connection is closed after the answer.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared and (not declared.isdigit() or int(declared) > self.limit):
            await _refuse(send)
            return
        seen = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, watched_send)
        except _TooLarge:
            if started:
                raise
            await _refuse(send)


async def _refuse(send: Send) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(_TOO_LARGE)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": _TOO_LARGE})


def client_of(request: Request) -> str:
    """The client as rate limits count it: its address, an IPv6 client's /64 network.

    `request.client` is the peer unless DIGESTBOT_TRUSTED_PROXIES names it (then uvicorn's
    ProxyHeadersMiddleware, added by create_app, has put X-Forwarded-For's client there).
    """
    host = request.client.host if request.client else ""
    if "x-forwarded-for" in request.headers:
        _untrusted_proxy(request, host)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/{IPV6_PREFIX}", strict=False))
    return str(ip)


_told: set[str] = set()
TELL_PEERS = 10  # peers told of by name; past them one last line (clients may send the header)


def _untrusted_proxy(request: Request, host: str) -> None:
    """Say once per peer that its X-Forwarded-For is ignored, when no proxy is trusted at all
    (with some trusted, the header stays after the client was taken from it). Any client may
    send the header: after `TELL_PEERS` peers one line says so, and nothing more is kept."""
    settings = request.app.state.web.settings
    if host in _told or len(_told) > TELL_PEERS or settings.trusted_proxies.strip():
        return
    _told.add(host)
    if len(_told) > TELL_PEERS:
        log.warning(
            "X-Forwarded-For ignored from more than %d addresses (clients send it, not only "
            "proxies); not told again until restart",
            TELL_PEERS,
        )
        return
    log.warning(
        "X-Forwarded-For from %s ignored: rate limits count that address; if it is your reverse "
        "proxy, add it to DIGESTBOT_TRUSTED_PROXIES",
        host,
    )


def trusted_proxies(setting: str) -> list[str]:
    """DIGESTBOT_TRUSTED_PROXIES as uvicorn's ProxyHeadersMiddleware takes it (empty: none).

    Each part is an address, a network or `*`; anything else is refused (uvicorn would take a
    mistyped address as a literal that never matches, and every client would share one limit)."""
    parts = [part for part in (p.strip() for p in setting.split(",")) if part]
    for part in parts:
        if part == "*":
            continue
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise ConfigError(
                f"DIGESTBOT_TRUSTED_PROXIES: {part!r} is not an address or a network; "
                "write e.g. 127.0.0.1 or 10.0.0.0/8, comma-separated"
            ) from None
    return parts


def loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_development_key(base_url: str, host: str = "127.0.0.1") -> None:
    """Raise ConfigError unless links point at, and the server listens on, this machine only.

    Without DIGESTBOT_SECRET_KEY links are signed with the public development key: anyone who
    can reach the server could forge manage and unsubscribe links.
    """
    where = urlsplit(base_url).hostname or ""
    if loopback(where) and loopback(host):
        return
    exposed = f"listens on {host}" if not loopback(host) else f"links point at {base_url}"
    raise ConfigError(
        f"DIGESTBOT_SECRET_KEY is not set and the web front {exposed}: anyone could forge its "
        "links; set DIGESTBOT_SECRET_KEY to a long random string (e.g. the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
    )
