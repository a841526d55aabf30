"""Hostile feeds from a real loopback server: bounded cost, clean text, the good items kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, SHARED_FIXTURES

from bot.config import load_settings
from bot.ingest import fetch_all
from bot.models import Entry
from bot.sources import FetchResult, FetchState, feeds
from bot.sources._caps import AUTHOR_RUN, FIELD_CHARS, PROLOG_CHARS, cap_feed
from bot.sources.feeds import read_feed
from bot.store import Store

NS = 'xmlns:dc="http://purl.org/dc/elements/1.1/"'


@contextmanager
def serving(bodies: dict[str, bytes]) -> Iterator[str]:
    """A loopback HTTP server answering GET path with bodies[path]; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def rss(items: str, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{prolog}<rss version="2.0" {NS}><channel><title>Lab</title>'
        f"<link>https://lab.example/</link>{items}</channel></rss>"
    ).encode()


def item(n: int, extra: str = "", title: str = "") -> str:
    return f"<item><title>{title or f'Post {n}'}</title><guid>https://lab.example/{n}</guid>{extra}</item>"


def fetch(tmp_path: Path, store: Store, body: bytes) -> tuple[Any, float]:
    """Fetch `body` as an rss source from a loopback server into `store`: (report, seconds)."""
    with serving({"/feed.xml": body}) as base:
        config = tmp_path / "digestbot.toml"
        config.write_text(
            f'[[sources]]\nname = "lab"\ntype = "rss"\nurl = "{base}/feed.xml"\n', encoding="utf-8"
        )
        settings = load_settings(
            str(config), {"DIGESTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}"}
        )
        start = time.monotonic()
        (report,) = fetch_all(settings, store)
        return report, time.monotonic() - start


HOSTILE_ITEMS = "".join(
    [
        item(1, "<dc:creator>Ada Lovelace, Charles Babbage, Grace Hopper</dc:creator>"),
        item(2, f"<dc:creator>{'a' * 100_000}</dc:creator>"),  # ~100 s for feedparser alone
        item(3, f"<author>{'x.' * 50_000}</author>"),
        item(
            4, f"<dc:creator>{'&#97;' * 20_000}</dc:creator>"
        ),  # the same run, written as references
        item(
            5,
            "<dc:creator>"
            + "<![CDATA["
            + "b" * 5_000
            + "]]>" * 1
            + "<![CDATA["
            + "b" * 5_000
            + "]]></dc:creator>",
        ),
        item(6, "<dc:creator>&long;&long;&long;&long;&long;&long;</dc:creator>"),
        item(7, title="T" * 300_000),
        item(8, f"<description>{'word ' * 40_000}</description>"),
        item(9, "<dc:creator>Grace Hopper</dc:creator>"),
    ]
)
HOSTILE_PROLOG = '\n<!DOCTYPE rss [\n<!ENTITY long "' + "c" * 1_500 + '">\n]>\n'


def test_a_hostile_feed_costs_bounded_time_and_its_good_items_are_stored(
    tmp_path: Path, store: Store
) -> None:
    report, seconds = fetch(tmp_path, store, rss(HOSTILE_ITEMS, HOSTILE_PROLOG))
    assert report.error == "" and report.new == 9
    assert seconds < 20, f"the hostile feed took {seconds:.1f} s (without caps: minutes)"
    assert [w for w in report.warnings if "trimmed" in w] == [
        "the feed has an entity declared as more than one character; trimmed it",
        f"the feed has an author field with a word of more than {AUTHOR_RUN} letters; trimmed it",
        f"the feed has an element with more than {FIELD_CHARS:,} characters of text; trimmed it",
    ]
    got = store.get_entries([f"https://lab.example/{n}" for n in range(1, 10)])
    assert got["https://lab.example/1"].authors == (
        "Ada Lovelace",
        "Charles Babbage",
        "Grace Hopper",
    )
    assert got["https://lab.example/9"].authors == ("Grace Hopper",)
    for n in (2, 3, 4, 5, 6):
        assert all(
            len(word) <= AUTHOR_RUN
            for a in got[f"https://lab.example/{n}"].authors
            for word in a.split()
        )
    assert got["https://lab.example/2"].authors == ("a" * AUTHOR_RUN,)
    assert len(got["https://lab.example/7"].title) == FIELD_CHARS
    assert got["https://lab.example/8"].summary == " ".join(["word"] * 40_000)[: FIELD_CHARS - 1]


def test_blank_lines_before_the_first_element_cost_nothing(tmp_path: Path, store: Store) -> None:
    # feedparser's DOCTYPE patterns are quadratic in them: 40,000 took 16 s.
    report, seconds = fetch(tmp_path, store, rss(item(1) + item(2), "\n" * 200_000))
    assert report.error == "" and report.new == 2
    assert seconds < 10
    assert (
        f"the feed has more than {PROLOG_CHARS:,} characters before its first element; trimmed it"
        in report.warnings
    )


def test_nul_and_invisible_characters_are_stripped_and_every_item_stored(
    tmp_path: Path, store: Store
) -> None:
    """On PostgreSQL one NUL used to fail the whole batch, with every entry's text in the error."""
    items = (
        item(1)
        + item(2, "<description>a\x00b</description>", title="Raw\x00NUL")
        + item(3, title="Entity &#0; NUL")
        + item(4, title="invoice_\u202egnp.exe")
        + item(
            5,
            "<dc:creator>Zero\u200bWidth \ufeffAuthor</dc:creator>",
            title="zero\u200b\u200c\u200d\u2060width",
        )
    )
    report, _ = fetch(tmp_path, store, rss(items))
    assert report.error == "" and report.new == 5
    got = store.get_entries([f"https://lab.example/{n}" for n in range(1, 6)])
    assert (
        got["https://lab.example/2"].title == "RawNUL"
        and got["https://lab.example/2"].summary == "ab"
    )
    assert "\x00" not in got["https://lab.example/3"].title
    assert got["https://lab.example/4"].title == "invoice_gnp.exe"
    assert got["https://lab.example/5"].title == "zerowidth"
    assert got["https://lab.example/5"].authors == ("ZeroWidth Author",)


def real_feeds() -> list[Path]:
    found = sorted(p for p in SHARED_FIXTURES.rglob("*") if p.suffix in (".xml", ".rss", ".atom"))
    return found + sorted(DATA.glob("*.xml"))


@pytest.mark.parametrize("path", real_feeds(), ids=lambda p: p.name)
def test_every_real_feed_is_left_exactly_as_it_was(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = path.read_bytes()
    capped, trimmed = cap_feed(content)
    assert capped is content and trimmed == []
    with_caps = outcome(content)
    monkeypatch.setattr(feeds, "cap_feed", lambda c: (c, []))
    assert outcome(content) == with_caps


def outcome(content: bytes) -> object:
    """What read_feed makes of a feed: the parsed feed, or the error it raised."""
    try:
        return read_feed(content, "https://feeds.example/feed.xml")
    except ValueError as e:
        return repr(e)


def test_real_feeds_are_there() -> None:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(
            f"{SHARED_FIXTURES} is absent: the shared fixtures live beside the repository (../shared)"
        )
    assert len(real_feeds()) > 40


@pytest.mark.parametrize("codec", ["utf-8", "utf-16", "utf-16-le", "utf-32"])
def test_caps_apply_in_every_encoding(codec: str) -> None:
    doc = (
        rss(item(1, f"<dc:creator>{'a' * 5_000}</dc:creator>"))
        .decode()
        .replace("utf-8", codec)
        .encode(codec)
    )
    capped, trimmed = cap_feed(doc)
    assert trimmed == [f"an author field with a word of more than {AUTHOR_RUN} letters"]
    assert capped.decode(codec).count("a" * AUTHOR_RUN) == 1 and "a" * (
        AUTHOR_RUN + 1
    ) not in capped.decode(codec)


def test_a_cut_never_splits_a_character_or_a_reference() -> None:
    text = "é" * (FIELD_CHARS // 2 + 10)  # two bytes each: the cap falls inside a character
    capped, _ = cap_feed(rss(item(1, f"<description>{text}</description>")))
    capped.decode("utf-8")  # still UTF-8
    refs = "&amp;" * (FIELD_CHARS // 5 + 7)
    capped, _ = cap_feed(rss(item(1, f"<description>x{refs}</description>")))
    (entry,) = read_feed(capped).entries
    assert set(entry.summary[1:]) == {"&"}


def test_the_pass_is_linear() -> None:
    """Five times the hostile input costs about five times as much, never twenty-five."""

    def cost(n: int) -> float:
        creator = (
            "<dc:creator>"
            + "a," * n
            + "&#97;" * n
            + "<![CDATA[b]]>" * n
            + "<!---->" * n
            + "</dc:creator>"
        )
        doc = rss(item(1, creator) + "<b>" * n + "<!--" * n + "<![CDATA[" * n)
        start = time.perf_counter()
        cap_feed(doc)
        return time.perf_counter() - start

    small, large = min(cost(4_000) for _ in range(3)), min(cost(20_000) for _ in range(3))
    assert large < 12 * small + 0.05, (small, large)


def test_what_is_never_closed_is_text_to_the_end() -> None:
    doc = rss(item(1, "<dc:creator>" + "<!--" + "a" * 1_000 + "</dc:creator>"))
    capped, trimmed = cap_feed(doc)
    assert trimmed == [f"an author field with a word of more than {AUTHOR_RUN} letters"]
    assert capped == doc.replace(b"a" * 1_000, b"a" * (AUTHOR_RUN - 2))  # "--aaa…" is one run


def test_every_source_result_is_cleaned_and_bounded() -> None:
    """FetchResult is the boundary: JSON and plug-in sources get the same cleaning as feeds."""
    dirty = Entry(
        id="guid\u200b-1",
        title="T\x00" * 100_001,
        summary="ok",
        authors=("A\u202eB", "\u200b"),
        tags=("x\x07",),
        extra={"k\x00": ["v\u2066", 3, {"n": "\x1b[2J"}]},
    )
    twin = Entry(id="guid-1", title="the same id once cleaned")
    (e,) = FetchResult([dirty, twin], FetchState()).entries
    assert e.id == "guid-1" and e.title == "T" * (FIELD_CHARS - 1) + "…"
    assert e.authors == ("AB",) and e.tags == ("x",)
    assert e.extra == {"k": ["v", 3, {"n": "[2J"}]}
    clean = Entry(id="a", title="fine", extra={"n": 1})
    assert FetchResult([clean], FetchState()).entries[0] is clean


@pytest.mark.slow  # a whole run --once: fetch, match, render, send
def test_a_run_with_a_hostile_feed_still_sends_its_digests_in_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17.3: the hostile feed beside the example feed — the run finishes in seconds (the
    100 KB dc:creator alone took feedparser ~85 s) and the subscriber's digest goes out."""
    from click.testing import CliRunner

    from bot.cli import cli

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--outbox"]).exit_code == 0
    with serving({"/feed.xml": rss(HOSTILE_ITEMS, HOSTILE_PROLOG)}) as base:
        config = tmp_path / "digestbot.toml"
        config.write_text(
            "lookback_days = 36500\n"  # the example feed is a fixed file: keep it offered
            + config.read_text(encoding="utf-8")
            + f'\n[[sources]]\nname = "hostile"\ntype = "rss"\nurl = "{base}/feed.xml"\n',
            encoding="utf-8",
        )
        start = time.monotonic()
        result = runner.invoke(cli, ["run", "--once"], env={"DIGESTBOT_CONFIG": ""})
        took = time.monotonic() - start
    assert result.exit_code == 0, result.output
    assert "example: sent" in result.output
    assert list((tmp_path / "outbox" / "example").glob("*.eml"))
    assert took < 30, f"the run took {took:.1f} s"


@pytest.mark.parametrize("url", ["", "https://blog.example.org/feed.xml"])
def test_a_link_that_is_not_a_url_costs_its_item_the_link_not_the_feed(url: str) -> None:
    """`http://[abc/` makes urlsplit raise ValueError: as an item's link (or the feed's own, used
    to resolve relative links) it used to fail the whole feed; now that item has no link."""
    xml = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<link>http://[abc/</link>
<item><title>Bad</title><link>http://[abc/</link><guid>g1</guid></item>
<item><title>Relative</title><link>/a[b</link><guid>g2</guid></item>
<item><title>Good</title><link>https://blog.example.org/good</link><guid>g3</guid></item>
</channel></rss>"""
    feed = read_feed(xml, url, "blog")
    assert [(e.title, e.url) for e in feed.entries] == [
        ("Bad", ""),
        ("Relative", "https://blog.example.org/a[b" if url else ""),
        ("Good", "https://blog.example.org/good"),
    ]
