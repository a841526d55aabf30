"""Polite HTTP for the sources: timeouts, a size cap, pacing per host, backoff on 429/503."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from ..errors import BotError
from ..retry_after import seconds_to_wait

RETRY_STATUSES = (429, 503)
MAX_WAIT = 300.0  # never sleep longer than this for one Retry-After


_STOPPING = threading.Event()  # set by `interrupt_waits`: no source waits any longer


class Clock:
    """Time as the sources see it; tests replace `CLOCK` with a fake that does not sleep."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait, unless digestbot is stopping (`interrupt_waits`): then the fetch fails at once."""
        if _STOPPING.wait(seconds):
            raise FetchError("stopped while waiting to ask again: digestbot is shutting down")


def interrupt_waits(stopping: bool = True) -> None:
    """End every source's wait now (a Retry-After of up to 5 minutes, three times over, would
    outlast the 120 s between SIGTERM and SIGKILL) and refuse new ones; False allows them again."""
    if stopping:
        _STOPPING.set()
    else:
        _STOPPING.clear()


CLOCK = Clock()
_last_call: dict[str, float] = {}  # host -> clock time of the last request to it


class FetchError(BotError):
    """A fetch failed; the message says why (the source turns it into a `SourceError` with the fix).

    Retry-After is honoured inside `get` (429/503 are retried); no FetchError needs to carry it.
    """


@dataclass(slots=True)
class Fetched:
    """A response read within the size cap."""

    status: int
    content: bytes
    url: str  # after redirects
    headers: Mapping[str, str]
    moved_to: str = ""  # the new address after a permanent redirect (301/308)
    waited: list[float] = field(default_factory=list)  # backoff sleeps taken


def pace(url: str, min_interval: float) -> None:
    """Wait until `min_interval` seconds have passed since the last request to this host."""
    host = urlsplit(url).netloc.lower()
    if min_interval > 0 and host in _last_call:
        wait = _last_call[host] + min_interval - CLOCK.now()
        if wait > 0:
            CLOCK.sleep(wait)
    _last_call[host] = CLOCK.now()


def get(
    http: requests.Session,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30,
    max_bytes: int = 10_000_000,
    min_interval: float = 0.0,
    retries: int = 3,
    backoff: float = 5.0,
    total_timeout: float | None = None,
) -> Fetched:
    """GET `url`: paced per host, retried with backoff on 429/503, body read up to `max_bytes`.

    `timeout` bounds each wait on the socket; `total_timeout` (default 4 × timeout, at least
    60 s) bounds reading the whole body, so a server that trickles bytes cannot hold a fetch.
    """
    waited: list[float] = []
    for attempt in range(retries + 1):
        pace(url, min_interval)
        try:
            resp = http.get(
                url, params=params, headers=dict(headers or {}), timeout=timeout, stream=True
            )
        except requests.Timeout as e:
            raise FetchError(f"no answer within {timeout:g} s") from e
        except requests.TooManyRedirects as e:
            raise FetchError(f"too many redirects ({scrub(str(e), url)})") from e
        except requests.RequestException as e:
            raise FetchError(f"cannot connect ({type(e).__name__}: {scrub(str(e), url)})") from e
        with resp:
            if resp.status_code in RETRY_STATUSES and attempt < retries:
                wait = seconds_to_wait(
                    resp.headers.get("Retry-After"), backoff * 2**attempt, MAX_WAIT
                )
                waited.append(wait)
                CLOCK.sleep(wait)
                continue
            content = _read_capped(
                resp, max_bytes, timeout, total_timeout or max(4 * timeout, 60.0)
            )
        moved = ""
        for hop in resp.history:
            if hop.status_code in (301, 308):
                moved = resp.url
        return Fetched(resp.status_code, content, resp.url or url, resp.headers, moved, waited)
    raise AssertionError("unreachable")  # pragma: no cover


_RAISE_CAP = " (if it really is this big, raise max_bytes in its [[sources]] table)"


def _read_capped(resp: requests.Response, max_bytes: int, timeout: float, total: float) -> bytes:
    deadline = time.monotonic() + total
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            f"the response is {int(declared):,} bytes, more than max_bytes = {max_bytes:,}{_RAISE_CAP}"
        )
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in resp.iter_content(16 * 1024):  # the deadline is checked once per chunk
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(
                    f"the response is more than max_bytes = {max_bytes:,} bytes{_RAISE_CAP}"
                )
            if time.monotonic() > deadline:
                raise FetchError(f"the body took more than {total:g} s to arrive")
            chunks.append(chunk)
    except requests.Timeout as e:
        raise FetchError(f"the body did not arrive within {timeout:g} s") from e
    except requests.RequestException as e:
        raise FetchError(f"the connection broke while reading ({type(e).__name__})") from e
    return b"".join(chunks)


_SECRET_PARAM = ("token", "key", "secret", "password", "passwd", "auth", "sig", "signature")


def shown(url: str) -> str:
    """A URL fit for messages and logs: a password or a token-like query value becomes ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        creds, host = netloc.rsplit("@", 1)
        netloc = f"{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(any(w in k.lower() for w in _SECRET_PARAM) for k, _ in pairs):
            query = urlencode(
                [(k, "***" if any(w in k.lower() for w in _SECRET_PARAM) else v) for k, v in pairs],
                safe="*:+/",
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, url: str) -> str:
    """`text` (an exception message) with the secrets of `url` replaced by ***."""
    parts = urlsplit(url)
    secrets = [parts.password or ""]
    secrets += [v for k, v in parse_qsl(parts.query) if any(w in k.lower() for w in _SECRET_PARAM)]
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    return text


def describe_status(status: int, reason: str = "") -> str:
    """A short text for an HTTP error status, with what usually fixes it."""
    hint = {
        401: "the feed needs a login, which digestbot does not support",
        403: "the server refuses digestbot; check the url in a browser",
        404: "check the url",
        410: "the feed is gone; remove this source",
        429: "the server asks to slow down; raise interval_minutes",
    }.get(status, "try again later" if status >= 500 else "check the url")
    return f"HTTP {status}{' ' + reason if reason else ''}; {hint}"
