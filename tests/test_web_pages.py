"""The pages of papers over real HTTP: `/`, `/day/…`, `/week/…`, `/digest/<token>`, `/feed/<token>.xml`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
import requests
from peers import SmtpPeer, free_port
from web_support import Site, csrf_of, link_in, running

from bot import tokens
from bot.config import Settings
from bot.delivery import Deliverer, run_once
from bot.models import Entry, Interests, Subscriber
from bot.store import Store
from bot.web import create_app
from bot.web.forms import parse_preferences

DAY = datetime(2026, 6, 12, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script> & Friends"


def hf(n: int, upvotes: int, title: str = "") -> Entry:
    return Entry(
        id=f"arxiv:2606.{n:05d}",
        title=title or f"Paper number {n}",
        summary="An abstract about sparse attention.",
        url=f"https://arxiv.org/abs/2606.{n:05d}",
        authors=("Ada Lovelace", "Alan Turing"),
        published=DAY,
        source="hf",
        extra={
            "upvotes": upvotes,
            "comments": 2,
            "hf_url": f"https://huggingface.co/papers/2606.{n:05d}",
            "github_repo": f"https://github.com/example/p{n}",
            "ai_summary": f"Paper {n} in one line.",
        },
    )


PAPERS = [hf(1, 7), hf(2, 40), hf(3, 12, HOSTILE), hf(4, 3)]
POST = Entry(
    "https://blog.example.org/post",
    "A blog post with no upvotes",
    url="https://blog.example.org/post",
    published=DAY,
    source="blog",
)
ORDER = ["Paper number 2", HOSTILE, "Paper number 1", "Paper number 4"]  # by upvotes


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("pages")
    (tmp / "subscriptions").mkdir()
    (tmp / "subscriptions" / "trend.toml").write_text(
        'email = "trend@example.org"\nmax_items = 2\n[interests]\ntrending = true\n'
    )
    port = free_port()
    with SmtpPeer() as inbox:
        settings = Settings(
            database_url=f"sqlite:///{tmp / 'db.sqlite'}",
            base_url=f"http://127.0.0.1:{port}",
            secret_key="pages-secret-key",
            smtp_url=inbox.url,
            subscriptions_dir=tmp / "subscriptions",
            from_addr="digestbot <digest@example.org>",
            lookback_days=36500,
        )
        store = Store(settings.database_url)
        store.upsert_entries([*PAPERS, POST])
        with running(create_app(settings, store), port) as url:
            yield Site(url, settings, store, inbox)
        store.close()


def titles(html: str) -> list[str]:
    """The paper titles of a page, in order (unescaped)."""
    found = re.findall(r'<span class="rank">\d+\.</span> <a href="[^"]*"[^>]*>([^<]*)</a>', html)
    return [
        t.replace("&lt;", "<").replace("&gt;", ">").replace("&#39;", "'").replace("&amp;", "&")
        for t in found
    ]


def test_the_front_page_lists_the_latest_day_most_upvoted_first_with_the_form(site: Site) -> None:
    r = requests.get(site.url + "/")
    assert r.status_code == 200
    assert titles(r.text)[:4] == ORDER
    assert "A blog post with no upvotes" in r.text  # listed after the counted ones
    assert r.text.index("Paper number 4") < r.text.index("A blog post with no upvotes")
    assert "▲ 40 upvotes · 2 comments" in r.text
    assert 'href="https://huggingface.co/papers/2606.00002"' in r.text
    assert 'href="https://arxiv.org/pdf/2606.00002"' in r.text
    assert 'href="https://github.com/example/p2"' in r.text
    assert "TL;DR:</strong> Paper 2 in one line." in r.text
    assert "<script>alert" not in r.text and "&lt;script&gt;alert" in r.text
    assert (
        'id="email"' in r.text and 'name="trending"' in r.text and 'action="/subscribe"' in r.text
    )


def test_day_and_week_pages_and_404_for_impossible_ones(site: Site) -> None:
    day = requests.get(site.url + "/day/2026-06-12")
    assert day.status_code == 200 and titles(day.text)[:4] == ORDER
    assert 'href="/week/2026-W24"' in day.text and 'href="/day/2026-06-11"' in day.text
    empty = requests.get(site.url + "/day/2026-06-11")
    assert empty.status_code == 200 and "No papers for this day yet." in empty.text
    week = requests.get(site.url + "/week/2026-W24")
    assert week.status_code == 200 and titles(week.text)[:4] == ORDER
    for path in (
        "/day/2026-02-30",
        "/day/2026-13-01",
        "/day/yesterday",
        "/week/2026-W54",
        "/week/2026-W00",
        # the calendar's edges: the page would link a day or week the calendar does not have
        "/day/0001-01-01",
        "/day/9999-12-31",
        "/week/0001-W01",
        "/week/9999-W52",
        "/day/10000-01-01",
    ):
        r = requests.get(site.url + path)
        assert r.status_code == 404, path
        assert "No such page" in r.text and "Traceback" not in r.text
        assert r.headers["content-type"].startswith("text/html")
    for path in ("/day/0001-01-02", "/day/9999-12-30", "/week/0001-W02", "/week/9999-W51"):
        r = requests.get(site.url + path)  # just inside the edges: their pages, empty
        assert r.status_code == 200 and "No papers for this day yet." in r.text, path


@pytest.mark.parametrize("path", ["/", "/subscribe"])
def test_a_sign_up_link_may_choose_the_time_zone_and_the_page_keeps_it(
    site: Site, path: str
) -> None:
    """`?tz=Asia/Tokyo` preselects that zone and tells the page's script to keep it over the
    browser's; a zone digestbot does not know is UTC, which the script may replace."""
    selected = re.compile(r'<option value="([^"/]+/[^"]+|UTC)" selected>')
    given = requests.get(site.url + path, params={"tz": "Asia/Tokyo"})
    assert given.status_code == 200 and selected.findall(given.text) == ["Asia/Tokyo"]
    assert 'id="timezone" name="timezone" data-keep="1"' in given.text
    for tz in ("Mars/Olympus", "<b>"):
        unknown = requests.get(site.url + path, params={"tz": tz})
        assert unknown.status_code == 200 and selected.findall(unknown.text) == ["UTC"]
        assert "data-keep" not in unknown.text and "<b>" not in unknown.text


def test_a_trending_digest_links_its_browser_view_and_the_feed_holds_its_items(
    site: Site,
) -> None:
    sub = Subscriber(
        "trend",
        email="trend@example.org",
        schedule="0 8 * * *",
        max_items=2,
        interests=Interests(trending=True),
    )
    before = site.inbox.count()
    d = Deliverer(site.settings, site.store)
    try:
        report = run_once(
            site.settings, site.store, [sub], now=datetime(2026, 6, 12, 9, tzinfo=UTC), deliverer=d
        )
    finally:
        d.close()
    assert [o.status for o in report.outcomes] == ["sent"], report
    mail = site.inbox.wait(before + 1)[-1]
    text = mail.parsed().get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.index("Paper number 2") < text.index("alert") and "Paper number 1" not in text
    assert "…and 2 more" in text  # the other counted papers: left out by max_items
    view = link_in(mail, "/digest/")
    assert "View in browser: " + view in text
    page = requests.get(view)
    assert page.status_code == 200 and titles(page.text) == ORDER[:2]
    assert "▲ 40 upvotes" in page.text and "…and 2 more matched" in page.text
    # The feed: linked from the manage page, valid Atom, the digest's items.
    manage = requests.get(link_in(mail, "/manage/"))
    href = re.search(r'href="([^"]+/feed/[^"]+\.xml)" id="feed"', manage.text)
    assert href, "the manage page does not link the feed"
    r = requests.get(href.group(1))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(r.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert [e.title for e in parsed.entries] == ORDER[:2]
    first = parsed.entries[0]
    assert first.link == "https://arxiv.org/abs/2606.00002"
    assert {lk.href for lk in first.links} >= {
        "https://huggingface.co/papers/2606.00002",
        "https://arxiv.org/pdf/2606.00002",
        "https://github.com/example/p2",
    }
    assert "▲ 40 upvotes" in first.summary and first.authors[0].name == "Ada Lovelace"
    assert b"<script>" not in r.content


def test_links_of_another_kind_or_forged_do_not_open_a_digest_or_feed(site: Site) -> None:
    manage = tokens.sign(site.settings, "manage", "trend")
    for path in (f"/digest/{manage}", f"/feed/{manage}.xml", "/digest/abc.def", "/feed/x.y.xml"):
        r = requests.get(site.url + path)
        assert r.status_code == 400 and "This link does not work" in r.text, path
    other = tokens.sign(site.settings, "view", "trend", digest_id="someone-else.20260612T0800Z")
    assert requests.get(f"{site.url}/digest/{other}").status_code == 404


def test_a_feed_link_of_an_old_address_reads_nothing_of_the_new_person(site: Site) -> None:
    """As manage and unsubscribe links (issue 17.12): once the file names another address, the
    feed link mailed to the old one is refused; the current address's link still reads."""
    old = tokens.sign(site.settings, "feed", "trend", address="someone.before@example.org")
    r = requests.get(f"{site.url}/feed/{old}.xml")
    assert r.status_code == 403 and "no longer valid" in r.text
    now = tokens.sign(site.settings, "feed", "trend", address="trend@example.org")
    assert requests.get(f"{site.url}/feed/{now}.xml").status_code == 200


def test_subscribing_to_trending_alone_is_enough(site: Site) -> None:
    s = requests.Session()
    csrf = csrf_of(s.get(site.url + "/").text)
    r = s.post(
        site.url + "/subscribe",
        data={"csrf": csrf, "email": "fan@example.org", "trending": "on", "min_upvotes": "5"},
    )
    assert r.status_code == 200 and "Check your inbox" in r.text
    row = site.store.web_subscriber_by_email("fan@example.org")
    assert (
        row is not None and row.interests["trending"] is True and row.interests["min_upvotes"] == 5
    )


@pytest.mark.parametrize("value", ["-1", "2.5", "many"])
def test_a_bad_upvote_floor_on_the_form_says_what_to_write(value: str) -> None:
    _, errors = parse_preferences(
        {"trending": "on", "min_upvotes": value}, set(), [], need_email=False
    )
    assert errors == {
        "min_upvotes": "Give a whole number of upvotes (0 or more), or leave it empty."
    }


def test_the_feed_of_the_real_fixture_day_is_valid(tmp_path: Path, shared_fixture: object) -> None:
    """Atom from real HF data (unusual characters and all) still parses cleanly."""
    import json

    from bot.sources.hf_daily import parse_daily_papers
    from bot.web._state import Web
    from bot.web.feed import atom

    path = shared_fixture("hf/hf_daily_papers_2026-06-12.json")  # type: ignore[operator]
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        secret_key="k",
        outbox_dir=tmp_path / "out",
    )
    store = Store(settings.database_url)
    store.upsert_entries(parse_daily_papers(json.loads(path.read_text(encoding="utf-8"))))
    sub = Subscriber("t", email="t@example.org", max_items=30, interests=Interests(trending=True))
    run_once(settings, store, [sub], now=datetime(2026, 6, 12, 9, tzinfo=UTC))
    parsed = feedparser.parse(atom(Web(settings, store), "t", "http://127.0.0.1/feed/x.xml"))
    assert not parsed.bozo and len(parsed.entries) == 30
    store.close()


def test_the_feed_holds_the_last_digests_sent_however_many_failed_since(tmp_path: Path) -> None:
    """README: the feed holds the items of the last 20 digests *sent*; a run of failed digests
    after them (a mailbox that bounced for a month) does not empty it."""
    from datetime import timedelta

    from bot.models import DigestItem
    from bot.web._state import Web
    from bot.web.feed import DIGESTS, atom

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", secret_key="k")
    store = Store(settings.database_url)
    store.upsert_entries([*PAPERS, POST])
    slot = datetime(2026, 6, 1, 8, tzinfo=UTC)
    sent = store.claim("t", slot, [DigestItem(PAPERS[1], 0.9), DigestItem(POST, 0.5)], "email")
    assert sent is not None
    store.mark_sent(sent.digest_id, "250 ok")
    for day in range(1, DIGESTS + 2):
        later = store.claim("t", slot + timedelta(days=day), [], "email")
        assert later is not None
        store.mark_failed(later.digest_id, "550 mailbox unavailable")
    parsed = feedparser.parse(atom(Web(settings, store), "t", "http://127.0.0.1/feed/x.xml"))
    assert not parsed.bozo
    assert [e.title for e in parsed.entries] == ["Paper number 2", "A blog post with no upvotes"]
    assert "TL;DR: Paper 2 in one line." in parsed.entries[0].summary
