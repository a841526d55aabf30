"""The rss source over HTTP: conditional GET, size cap, timeouts, redirects, real headers."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import requests
import responses

from bot.errors import SourceError
from bot.ingest import USER_AGENT, http_session
from bot.retry_after import seconds_to_wait
from bot.sources import FetchState
from bot.sources._http import MAX_WAIT
from bot.sources.feeds import Rss

URL = "https://blog.example/feed.xml"
FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Lab blog</title><link>https://blog.example/</link>
<item><title>First post</title><link>/posts/1</link><guid isPermaLink="false">p1</guid></item>
</channel></rss>"""


def rss(**options: Any) -> Rss:
    return Rss("blog", {"url": URL, **options}, http_session())


@responses.activate
def test_conditional_get_sends_validators_and_a_304_changes_nothing() -> None:
    responses.get(
        URL, body=FEED, headers={"ETag": '"v1"', "Last-Modified": "Fri, 27 Nov 2026 10:00:00 GMT"}
    )
    first = rss().fetch(FetchState())
    assert [e.id for e in first.entries] == ["https://blog.example/feed.xml#p1"]
    assert (first.state.etag, first.state.last_modified) == (
        '"v1"',
        "Fri, 27 Nov 2026 10:00:00 GMT",
    )
    assert "If-None-Match" not in responses.calls[0].request.headers
    assert responses.calls[0].request.headers["User-Agent"] == USER_AGENT
    responses.replace(responses.GET, URL, status=304)
    second = rss().fetch(first.state)
    sent = responses.calls[1].request.headers
    assert (
        sent["If-None-Match"] == '"v1"'
        and sent["If-Modified-Since"] == "Fri, 27 Nov 2026 10:00:00 GMT"
    )
    assert second.not_modified and second.entries == [] and second.state == first.state


@responses.activate
def test_relative_links_resolve_against_the_final_url_after_a_redirect() -> None:
    responses.get(URL, status=301, headers={"Location": "https://new.example/blog/rss"})
    responses.get("https://new.example/blog/rss", body=FEED, content_type="application/rss+xml")
    result = rss().fetch(FetchState())
    assert result.entries[0].url == "https://new.example/posts/1"
    assert (
        result.entries[0].id == "https://blog.example/feed.xml#p1"
    )  # scoped by the configured url: stable
    assert any("moved permanently to https://new.example/blog/rss" in w for w in result.warnings)


@responses.activate
def test_a_redirect_loop_is_an_error() -> None:
    responses.get(URL, status=302, headers={"Location": URL})
    with pytest.raises(SourceError, match="too many redirects"):
        rss().fetch(FetchState())


@responses.activate
def test_size_cap_by_content_length() -> None:
    responses.get(URL, body=FEED)
    with pytest.raises(SourceError, match="more than max_bytes = 100"):
        rss(max_bytes=100).fetch(FetchState())


class _Endless(BaseHTTPRequestHandler):
    """Sends a body with no Content-Length, far larger than any cap."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        for _ in range(64):
            self.wfile.write(b"<!-- padding -->" * 1024)

    def log_message(self, *args: Any) -> None:
        pass


def test_size_cap_while_reading_a_body_of_unknown_length() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Endless)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/feed.xml"
        with pytest.raises(SourceError, match="more than max_bytes = 100,000 bytes"):
            Rss("big", {"url": url, "max_bytes": 100_000}, http_session()).fetch(FetchState())
    finally:
        server.shutdown()
        server.server_close()


@responses.activate
def test_timeout_names_the_limit() -> None:
    responses.get(URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(
        SourceError, match=r"no answer within 5 s; check the url or try again later"
    ):
        rss(timeout=5).fetch(FetchState())


@responses.activate
def test_an_html_page_is_not_a_feed() -> None:
    responses.get(
        URL,
        body=b"<!doctype html><html><head><title>Blog</title></head><body>hi</body></html>",
        content_type="text/html",
    )
    with pytest.raises(SourceError, match="check that the url gives a feed, not a web page"):
        rss().fetch(FetchState())


@responses.activate
def test_the_servers_charset_is_used() -> None:
    body = FEED.replace(b"First post", "Première étape".encode("iso-8859-1")).replace(
        b' encoding="utf-8"', b""
    )
    responses.get(URL, body=body, content_type="text/xml; charset=ISO-8859-1")
    result = rss().fetch(FetchState())
    assert result.entries[0].title == "Première étape" and result.warnings == []


@responses.activate
def test_gone_feed_says_remove_it() -> None:
    responses.get(URL, status=410)
    with pytest.raises(SourceError, match="HTTP 410; the feed is gone; remove this source"):
        rss().fetch(FetchState())


def test_retry_after_forms() -> None:
    assert seconds_to_wait("12", 5.0, MAX_WAIT) == 12.0
    assert seconds_to_wait(None, 5.0, MAX_WAIT) == 5.0
    assert seconds_to_wait("soon", 5.0, MAX_WAIT) == 5.0
    assert (
        seconds_to_wait("Wed, 21 Oct 2015 07:28:00 GMT", 5.0, MAX_WAIT) == 0.0
    )  # a date in the past: go now
    assert seconds_to_wait("99999", 5.0, MAX_WAIT) == 300.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": "soon"}, "timeout = 'soon' is not a number > 0; write e.g. timeout = 30"),
        ({"max_bytes": True}, "max_bytes = True is not a number > 0"),
        # 0, nan or inf passed `check` and then failed every fetch
        ({"timeout": 0}, "timeout = 0 is not a number > 0; write e.g. timeout = 30"),
        ({"timeout": float("nan")}, "timeout = nan is not a number > 0"),
        ({"timeout": float("inf")}, "timeout = inf is not a number > 0"),
        ({"max_bytes": 0}, "max_bytes = 0 is not a number > 0; write e.g. max_bytes = 10000000"),
        ({"max_bytes": -1}, "max_bytes = -1 is not a number > 0"),
        ({"url": 42}, "url = 42 is not a non-empty string"),
    ],
)
def test_a_badly_typed_option_names_the_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SourceError, match=message.replace("(", r"\(")):
        Rss("blog", {"url": URL, **options}, http_session())


def test_arxiv_categories_may_be_a_list() -> None:
    from bot.sources.arxiv_api import Arxiv

    Arxiv("a", {"categories": ["cs.LG", "cs.AI"]}, http_session())
    with pytest.raises(SourceError, match="categories = 3 is not a string or a list of strings"):
        Arxiv("a", {"categories": 3}, http_session())


def test_shown_urls_hide_passwords_and_tokens() -> None:
    from bot.sources._http import scrub, shown

    assert shown("https://me:s3cret@feeds.example/x.xml") == "https://me:***@feeds.example/x.xml"
    assert (
        shown("https://feeds.example/x.xml?user=me&private_token=abc123")
        == "https://feeds.example/x.xml?user=me&private_token=***"
    )
    assert shown("https://feeds.example/x.xml?page=2") == "https://feeds.example/x.xml?page=2"
    assert (
        scrub("failed: /x.xml?private_token=abc123", "https://h/x.xml?private_token=abc123")
        == "failed: /x.xml?private_token=***"
    )


@responses.activate
def test_a_connection_error_never_shows_the_token() -> None:
    url = "https://feeds.example/x.xml?token=abc123"
    responses.get(
        url, body=requests.ConnectionError("Max retries exceeded with url: /x.xml?token=abc123")
    )
    with pytest.raises(SourceError) as info:
        Rss("private", {"url": url}, http_session()).fetch(FetchState())
    assert "abc123" not in str(info.value) and "token=***" in str(info.value)


@responses.activate
def test_ids_scoped_by_a_private_feed_url_carry_no_token() -> None:
    url = "https://feeds.example/x.xml?token=abc123"
    responses.get(url, body=FEED)
    (e,) = Rss("private", {"url": url}, http_session()).fetch(FetchState()).entries
    assert e.id == "https://feeds.example/x.xml?token=***#p1"


class _Trickle(BaseHTTPRequestHandler):
    """Sends a feed a few bytes at a time, slowly."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        try:
            for _ in range(12):
                self.wfile.write(b" " * 64)
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    def log_message(self, *args: Any) -> None:
        pass


def test_a_server_that_trickles_is_cut_off() -> None:
    from bot.sources._http import FetchError, get

    server = HTTPServer(("127.0.0.1", 0), _Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(FetchError, match="the body took more than 0.3 s to arrive"):
            get(
                http_session(),
                f"http://127.0.0.1:{server.server_port}/",
                timeout=5,
                total_timeout=0.3,
            )
    finally:
        server.shutdown()
        server.server_close()


def test_source_exceptions_are_bot_errors() -> None:
    from bot.errors import BotError
    from bot.sources._http import FetchError
    from bot.sources.feeds import ArxivApiError

    assert issubclass(FetchError, BotError) and issubclass(ArxivApiError, BotError)
    assert issubclass(ArxivApiError, ValueError)  # read_feed's "not a feed to read" family


class _Busy(BaseHTTPRequestHandler):
    """503 with Retry-After: 300, as a feed host under load answers."""

    asked = threading.Event()

    def do_GET(self) -> None:
        _Busy.asked.set()
        self.send_response(503)
        self.send_header("Retry-After", "300")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_fetch_waiting_out_a_retry_after_gives_up_when_digestbot_stops() -> None:
    """The real clock: a 300 s Retry-After is being waited out when the scheduler stops; the
    fetch fails at once with the reason (SIGKILL comes 120 s after SIGTERM), and once waits
    are allowed again a fetch waits as before."""
    from bot.sources._http import FetchError, get, interrupt_waits

    interrupt_waits(False)
    _Busy.asked.clear()
    server = HTTPServer(("127.0.0.1", 0), _Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    failed: list[BaseException] = []

    def fetch() -> None:
        try:
            get(http_session(), url, timeout=5)
        except FetchError as e:
            failed.append(e)

    try:
        worker = threading.Thread(target=fetch)
        worker.start()
        assert _Busy.asked.wait(10), "the server was never asked"
        time.sleep(0.2)
        assert worker.is_alive()  # waiting out the 300 s
        interrupt_waits()
        worker.join(10)
        assert not worker.is_alive() and "shutting down" in str(failed[0])
    finally:
        interrupt_waits(False)
        server.shutdown()
        server.server_close()
    later = threading.Thread(target=fetch)
    _Busy.asked.clear()
    server = HTTPServer(("127.0.0.1", 0), _Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    try:
        later.start()
        assert _Busy.asked.wait(10)
        time.sleep(0.2)
        assert later.is_alive(), "after interrupt_waits(False) a fetch waits again"
    finally:
        interrupt_waits()
        later.join(10)
        interrupt_waits(False)
        server.shutdown()
        server.server_close()
