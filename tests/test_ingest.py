"""Ingest: every source into the store, one entry per paper, nothing new from an unchanged feed."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import responses
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import cli
from bot.config import Settings, load_settings
from bot.ingest import fetch_all
from bot.models import Entry
from bot.store import Store, entries, merge_entry

DATA = Path(__file__).resolve().parent / "data"
BLOG = "https://blog.example/feed.xml"
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def blog_feed(items: list[tuple[str, str]], dated: bool = True) -> bytes:
    body = "".join(
        f"<item><title>{title}</title><link>https://blog.example/{guid}</link><guid>https://blog.example/{guid}</guid>"
        + ("<pubDate>Thu, 26 Nov 2026 10:00:00 GMT</pubDate>" if dated else "")
        + "</item>"
        for guid, title in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title><link>https://blog.example/</link>{body}</channel></rss>'.encode()


def write_config(tmp_path: Path, sources: str) -> Settings:
    config = tmp_path / "digestbot.toml"
    config.write_text(sources, encoding="utf-8")
    return load_settings(
        str(config), {"DIGESTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    )


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield s
    s.close()


def count(store: Store) -> int:
    with store.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(entries)).scalar_one())


BLOG_CONFIG = f'[[sources]]\nname = "blog"\ntype = "rss"\nurl = "{BLOG}"\n'


@responses.activate
def test_second_fetch_of_an_unchanged_feed_is_conditional_and_stores_nothing(
    tmp_path: Path, store: Store
) -> None:
    settings = write_config(tmp_path, BLOG_CONFIG)
    responses.get(
        BLOG,
        body=blog_feed([("a", "A"), ("b", "B")]),
        headers={"ETag": '"e1"', "Last-Modified": "Thu, 26 Nov 2026 10:00:00 GMT"},
    )
    (first,) = fetch_all(settings, store, now=T0)
    assert (first.new, first.updated, first.unchanged, first.error) == (2, 0, 0, "")
    responses.replace(responses.GET, BLOG, status=304)
    (second,) = fetch_all(settings, store, now=T0 + timedelta(hours=1))
    headers = responses.calls[1].request.headers
    assert (
        headers["If-None-Match"] == '"e1"'
        and headers["If-Modified-Since"] == "Thu, 26 Nov 2026 10:00:00 GMT"
    )
    assert second.not_modified and (second.new, second.updated, second.unchanged) == (0, 0, 0)
    assert count(store) == 2
    assert store.get_state("blog").etag == '"e1"'


@responses.activate
def test_a_feed_that_reorders_or_edits_its_items_sends_nothing_new(
    tmp_path: Path, store: Store
) -> None:
    settings = write_config(tmp_path, BLOG_CONFIG)
    responses.get(BLOG, body=blog_feed([("a", "A"), ("b", "B"), ("c", "C")]))
    fetch_all(settings, store, now=T0)
    responses.replace(responses.GET, BLOG, body=blog_feed([("c", "C"), ("a", "A"), ("b", "B")]))
    (reordered,) = fetch_all(settings, store, now=T0 + timedelta(hours=1))
    assert (reordered.new, reordered.updated, reordered.unchanged) == (0, 0, 3)
    responses.replace(
        responses.GET, BLOG, body=blog_feed([("c", "C, corrected"), ("a", "A"), ("b", "B")])
    )
    (edited,) = fetch_all(settings, store, now=T0 + timedelta(hours=2))
    assert (edited.new, edited.updated, edited.unchanged) == (0, 1, 2)
    assert (
        store.get_entries(["https://blog.example/c"])["https://blog.example/c"].title
        == "C, corrected"
    )
    assert count(store) == 3


@responses.activate
def test_undated_entries_get_their_first_seen_time(tmp_path: Path, store: Store) -> None:
    settings = write_config(tmp_path, BLOG_CONFIG)
    responses.get(BLOG, body=blog_feed([("a", "A")], dated=False))
    fetch_all(settings, store, now=T0)
    fetch_all(settings, store, now=T0 + timedelta(days=1))
    assert store.get_entries(["https://blog.example/a"])["https://blog.example/a"].published == T0


@responses.activate
def test_one_failing_source_never_stops_the_others_and_loses_nothing(
    tmp_path: Path, store: Store, shared_fixture: Any
) -> None:
    broken = shared_fixture("feeds/feed-rs__rss_2.0_invalid_1.xml")
    settings = write_config(
        tmp_path,
        BLOG_CONFIG
        + f"""
[[sources]]
name = "down"
type = "rss"
url = "https://down.example/feed.xml"

[[sources]]
name = "local"
type = "file"
path = "{DATA / "paper_arxiv_rss.xml"}"
""",
    )
    responses.get(BLOG, body=blog_feed([("a", "A")]), headers={"ETag": '"e1"'})
    responses.get("https://down.example/feed.xml", status=500)
    reports = {r.source: r for r in fetch_all(settings, store, now=T0)}
    assert reports["blog"].new == 1 and reports["local"].new == 2
    assert "HTTP 500" in reports["down"].error
    # The blog now answers with a feed truncated by a server error: an error, nothing wiped.
    responses.replace(responses.GET, BLOG, body=broken.read_bytes())
    (blog,) = [
        r for r in fetch_all(settings, store, now=T0 + timedelta(hours=1)) if r.source == "blog"
    ]
    assert "not a readable RSS/Atom feed" in blog.error
    assert count(store) == 3
    assert store.get_state("blog").etag == '"e1"'  # the last good state is kept


def test_an_error_text_from_a_server_is_stored_printable_and_capped(
    tmp_path: Path, backend_url: str
) -> None:
    """An API's `error` text is quoted in the source's error: a NUL in it (PostgreSQL refuses
    NUL) stopped every source's fetch, and its length was unbounded."""
    answer = tmp_path / "hf-error.json"
    answer.write_text(json.dumps({"error": "rate limited\u0000 try later " + "x" * 10_000}))
    settings = write_config(
        tmp_path,
        f"""
[[sources]]
name = "hf"
type = "file"
path = "{answer}"

[[sources]]
name = "local"
type = "file"
path = "{DATA / "paper_arxiv_rss.xml"}"
""",
    )
    with Store(backend_url) as store:
        reports = {r.source: r for r in fetch_all(settings, store, now=T0)}
        statuses = store.source_statuses()
    assert reports["local"].new == 2 and not reports["local"].error
    stored = next(s for s in statuses if s.name == "hf").last_error
    assert stored == reports["hf"].error and "rate limited  try later" in stored
    assert "\x00" not in stored and len(stored) <= 2000


def test_a_warning_quoting_the_feed_reaches_no_terminal_with_its_escapes(
    tmp_path: Path, store: Store
) -> None:
    """feedparser's warning quotes the encoding a feed declares: a feed owner could write
    terminal escapes into `fetch`'s output, the log and `match --entries`' warnings."""
    from click.testing import CliRunner

    from bot.cli import cli

    feed = tmp_path / "evil.xml"
    feed.write_bytes(
        b'<?xml version="1.0" encoding="utf-8\x1b[2J\x1b]0;PWNED\x07"?>'
        b'<rss version="2.0"><channel><title>t</title><item><title>A paper</title>'
        b"<link>https://example.org/a</link></item></channel></rss>"
    )
    settings = write_config(
        tmp_path, f'[[sources]]\nname = "evil"\ntype = "file"\npath = "{feed}"\n'
    )
    (report,) = fetch_all(settings, store, now=T0)
    assert report.warnings and not any("\x1b" in w or "\x07" in w for w in report.warnings)
    done = CliRunner().invoke(cli, ["match", "--entries", str(feed)], color=True)
    assert "warning:" in done.output and "\x1b" not in done.output, done.output


def test_the_same_paper_from_three_sources_is_one_entry_enriched(store: Store) -> None:
    from bot.sources.files import read_entries

    rss, _ = read_entries(DATA / "paper_arxiv_rss.xml", "arxiv-lg")
    hf, _ = read_entries(DATA / "paper_hf.json", "hf")
    api, _ = read_entries(DATA / "paper_arxiv_api.xml", "arxiv-q")
    assert store.upsert_entries(rss, now=T0) == (2, 0, 0)
    assert store.upsert_entries(hf, now=T0 + timedelta(hours=1)) == (0, 1, 0)
    assert store.upsert_entries(api, now=T0 + timedelta(hours=2)) == (0, 1, 0)
    e = store.get_entries(["arxiv:2611.04242"])["arxiv:2611.04242"]
    assert e.source == "arxiv-lg"  # the first source stays
    assert e.published == datetime(2026, 11, 26, 5, 0, tzinfo=UTC)  # and the first date
    assert (
        e.extra["upvotes"] == 17 and e.extra["hf_url"] == "https://huggingface.co/papers/2611.04242"
    )
    assert e.extra["version"] == 2 and e.extra["announce_type"] == "new"
    assert set(e.tags) >= {"cs.LG", "cs.CL", "KV cache", "quantization"}
    assert count(store) == 2


def test_merge_keeps_counters_growing_and_the_first_announcement() -> None:
    old = Entry("arxiv:1", "T", extra={"upvotes": 20, "version": 3, "announce_type": "new"})
    stale = Entry(
        "arxiv:1",
        "T",
        extra={"upvotes": 5, "version": 2, "announce_type": "replace", "doi": "10.1/x"},
    )
    assert merge_entry(old, stale).extra == {
        "upvotes": 20,
        "version": 3,
        "announce_type": "new",
        "doi": "10.1/x",
    }
    fresh = Entry("arxiv:1", "T", extra={"upvotes": 25})
    assert merge_entry(old, fresh).extra["upvotes"] == 25


def test_merge_never_loses_what_it_had() -> None:
    old = Entry("x", "Title", "Summary", "https://x", ("A",), source="first", tags=("t1",))
    empty = Entry("x", "", "", "", (), source="second", tags=("t2",))
    assert merge_entry(old, empty) == replace(old, tags=("t1", "t2"))
    assert merge_entry(old, old) == old
    edited = Entry("x", "New title", "", "https://y", ("B",), source="second")
    assert merge_entry(old, edited) == replace(old, title="New title", url="https://y")


def test_the_store_merges_by_the_same_rule_and_counts_what_changed(store: Store) -> None:
    old = Entry(
        "x",
        "Title",
        "Summary",
        "https://x",
        ("A",),
        published=T0,
        source="first",
        tags=("t1",),
        extra={"upvotes": 20, "announce_type": "new"},
    )
    later = Entry(
        "x",
        "New title",
        "",
        "",
        ("B",),
        published=T0 + timedelta(days=1),
        source="second",
        tags=("t2",),
        extra={"upvotes": 5, "announce_type": "replace", "doi": "d"},
    )
    assert store.upsert_entries([old], now=T0) == (1, 0, 0)
    assert store.upsert_entries([old], now=T0 + timedelta(hours=1)) == (0, 0, 1)
    assert store.upsert_entries([later], now=T0 + timedelta(hours=2)) == (0, 1, 0)
    assert store.get_entries(["x"])["x"] == merge_entry(old, later)
    assert store.upsert_entries([later], now=T0 + timedelta(hours=3)) == (0, 0, 1)


def test_entry_files_merge_as_the_store_does(store: Store) -> None:
    """`digestbot match --entries` merges one paper from several files by the store's rule."""
    from bot.ingest import read_entry_files
    from bot.sources.files import read_entries

    files = [DATA / "paper_arxiv_rss.xml", DATA / "paper_hf.json", DATA / "paper_arxiv_api.xml"]
    heard: list[tuple[str, str]] = []
    merged = read_entry_files([str(f) for f in files], warn=lambda path, w: heard.append((path, w)))
    for f in files:
        store.upsert_entries(read_entries(f)[0], now=T0)
    assert len(merged) == 2 and {e.id: e for e in merged} == store.get_entries(
        [e.id for e in merged]
    )
    assert heard == [(str(f), w) for f in files for w in read_entries(f)[1]]


def test_one_batch_with_the_same_paper_twice_merges_in_memory(store: Store) -> None:
    a = Entry("arxiv:9", "T", tags=("x",), extra={"upvotes": 3})
    b = Entry("arxiv:9", "T", tags=("y",), extra={"upvotes": 1, "doi": "d"})
    assert store.upsert_entries([a, b], now=T0) == (1, 0, 0)
    e = store.get_entries(["arxiv:9"])["arxiv:9"]
    assert e.tags == ("x", "y") and e.extra == {"upvotes": 3, "doi": "d"}


# --- the CLI ------------------------------------------------------------------------------------


@responses.activate
def test_digestbot_fetch_prints_per_source_and_exits_1_when_one_failed(tmp_path: Path) -> None:
    (tmp_path / "digestbot.toml").write_text(
        BLOG_CONFIG
        + """
[[sources]]
name = "down"
type = "rss"
url = "https://down.example/feed.xml"
""",
        encoding="utf-8",
    )
    responses.get(BLOG, body=blog_feed([("a", "A"), ("b", "B")]), headers={"ETag": '"e1"'})
    responses.get("https://down.example/feed.xml", status=404)
    env = {"DIGESTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(tmp_path / "digestbot.toml"), "fetch"], env=env)
    assert result.exit_code == 1, result.output
    assert "blog  2 new, 0 updated, 0 unchanged, 0 errors" in result.output
    assert (
        "down  FAILED: source 'down': https://down.example/feed.xml: HTTP 404; check the url"
        in result.output
    )
    responses.replace(responses.GET, BLOG, status=304)
    result = runner.invoke(
        cli, ["--config", str(tmp_path / "digestbot.toml"), "fetch", "--source", "blog"], env=env
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "blog  0 new, 0 updated, 0 unchanged, 0 errors  (not modified)"


def test_digestbot_fetch_rejects_an_unknown_source(tmp_path: Path) -> None:
    (tmp_path / "digestbot.toml").write_text(BLOG_CONFIG, encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["--config", str(tmp_path / "digestbot.toml"), "fetch", "--source", "nope"]
    )
    assert result.exit_code == 2 and "no source named 'nope'; the sources are blog" in result.output


@pytest.mark.slow
def test_match_merges_one_paper_from_hf_arxiv_api_and_arxiv_rss() -> None:
    args = [
        "match",
        "--entries",
        str(DATA / "paper_hf.json"),
        "--entries",
        str(DATA / "paper_arxiv_api.xml"),
        "--entries",
        str(DATA / "paper_arxiv_rss.xml"),
        "--subscriptions",
        str(DATA / "subscriptions"),
        "--json",
        "--all",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (sub,) = json.loads(result.output)["subscribers"]
    ids = [e["id"] for e in sub["entries"]]
    assert sorted(ids) == ["arxiv:2301.00001", "arxiv:2611.04242"]


class _FeedServer(BaseHTTPRequestHandler):
    """Serves tests/data/paper_arxiv_rss.xml with an ETag, answering 304 when it matches."""

    seen: ClassVar[list[dict[str, str]]] = []
    etag = '"paper-rss-1"'

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        if self.headers.get("If-None-Match") == self.etag:
            self.send_response(304)
            self.end_headers()
            return
        body = (DATA / "paper_arxiv_rss.xml").read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("ETag", self.etag)
        self.send_header("Last-Modified", "Thu, 26 Nov 2026 05:00:00 GMT")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_fetch_twice_from_a_real_server(tmp_path: Path, fake_clock: Any) -> None:
    _FeedServer.seen = []
    server = HTTPServer(("127.0.0.1", 0), _FeedServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/rss/cs.LG"
        (tmp_path / "digestbot.toml").write_text(
            f'[[sources]]\nname = "lg"\ntype = "arxiv"\nurl = "{url}"\n', encoding="utf-8"
        )
        env = {"DIGESTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
        args = ["--config", str(tmp_path / "digestbot.toml"), "fetch"]
        first = CliRunner().invoke(cli, args, env=env)
        second = CliRunner().invoke(cli, args, env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert first.output.strip() == "lg  2 new, 0 updated, 0 unchanged, 0 errors"
    assert second.output.strip() == "lg  0 new, 0 updated, 0 unchanged, 0 errors  (not modified)"
    assert "If-None-Match" not in _FeedServer.seen[0]
    assert _FeedServer.seen[1]["If-None-Match"] == '"paper-rss-1"'
    assert _FeedServer.seen[1]["If-Modified-Since"] == "Thu, 26 Nov 2026 05:00:00 GMT"
    assert _FeedServer.seen[1]["User-Agent"].startswith("digestbot/")
    store = Store(env["DIGESTBOT_DATABASE_URL"])
    try:
        assert count(store) == 2
    finally:
        store.close()


@pytest.fixture
def pg_store(pg_url: str) -> Any:
    """A Store in a fresh PostgreSQL schema, dropped afterwards; skipped without a server."""
    s = Store(pg_url)
    try:
        yield s
    finally:
        s.close()


@pytest.mark.postgres
def test_postgres_one_paper_three_sources_and_a_long_guid(pg_store: Store) -> None:
    from bot.sources.feeds import parse_feed
    from bot.sources.files import read_entries

    for name in ("paper_arxiv_rss.xml", "paper_hf.json", "paper_arxiv_api.xml"):
        found, _ = read_entries(DATA / name)
        pg_store.upsert_entries(found, now=T0)
    e = pg_store.get_entries(["arxiv:2611.04242"])["arxiv:2611.04242"]
    assert (
        e.extra["upvotes"] == 17 and e.extra["version"] == 2 and e.extra["announce_type"] == "new"
    )
    guid = "https://blog.example/" + "very-long-slug-" * 40
    feed = f'<rss version="2.0"><channel><title>b</title><item><title>t</title><guid>{guid}</guid></item></channel></rss>'
    long_entries, _ = parse_feed(feed.encode(), BLOG)
    assert pg_store.upsert_entries(long_entries, now=T0) == (1, 0, 0)
    assert pg_store.upsert_entries(long_entries, now=T0) == (0, 0, 1)
