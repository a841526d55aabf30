"""Trending digests (README "Trending"): the most upvoted papers, settled counts, mixed sources, bad keys."""

from __future__ import annotations

import email
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import responses
import time_machine
from click.testing import CliRunner, Result

from bot.cli import cli
from bot.config import Settings
from bot.delivery import select_entries
from bot.ingest import http_session
from bot.models import DigestItem, Entry, Interests, Subscriber
from bot.sources import FetchState
from bot.sources.feeds import parse_feed
from bot.sources.hf_daily import API_URL, HfDaily, parse_daily_papers
from bot.store import Store, merge_entry
from bot.trending import blend, by_popularity, popularity, trending_pool

Fixture = Callable[[str], Path]
DAY = "hf/hf_daily_papers_2026-06-12.json"
NOON = datetime(2026, 6, 12, 12, 0, tzinfo=UTC)


def top(data: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The `n` most upvoted papers of a daily-papers file, most upvoted first."""
    return sorted((d["paper"] for d in data), key=lambda p: -int(p.get("upvotes") or 0))[:n]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="digestbot")


def setup(folder: Path, source: Path, interests: str, max_items: int = 5) -> None:
    (folder / "digestbot.toml").write_text(
        'subscriptions_dir = "subscriptions"\noutbox_dir = "outbox"\n\n'
        f'[[sources]]\nname = "hf"\ntype = "file"\npath = {json.dumps(str(source))}\n'
    )
    (folder / "subscriptions").mkdir(exist_ok=True)
    (folder / "subscriptions" / "trend.toml").write_text(
        'email = "trend@example.org"\nschedule = "0 8 * * *"\ntimezone = "UTC"\n'
        f"max_items = {max_items}\n\n[interests]\n{interests}\n"
    )


def parts(message: Message) -> tuple[str, str]:
    """The text and HTML bodies of a digest email."""
    text = html = ""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_content()  # type: ignore[attr-defined]
        elif part.get_content_type() == "text/html":
            html = part.get_content()  # type: ignore[attr-defined]
    return text, html


def test_trending_only_gets_the_five_most_upvoted_in_order_with_counts_and_links(
    here: Path, shared_fixture: Fixture
) -> None:
    """The issue's done-when: the fixture day as the only source, a fresh store, trending = true."""
    source = shared_fixture(DAY)
    data = json.loads(source.read_text(encoding="utf-8"))
    setup(here, source, "trending = true")
    with time_machine.travel(NOON, tick=True):
        result = invoke("run", "--once")
    assert result.exit_code == 0, result.output
    (eml,) = (here / "outbox" / "trend").glob("*.eml")
    text, html = parts(email.message_from_bytes(eml.read_bytes(), policy=email.policy.default))
    best = top(data, 5)
    assert [p["upvotes"] for p in best] == sorted((p["upvotes"] for p in best), reverse=True)
    at = [text.index(" ".join(p["title"].split())) for p in best]
    assert at == sorted(at), "not most upvoted first"
    assert text.count("\n1. ") == 1 and "\n6. " not in text  # exactly five items
    for p in best:
        pid = p["id"]
        assert f"▲ {p['upvotes']} upvotes" in text and f"▲ {p['upvotes']} upvotes" in html
        for url in (
            f"https://huggingface.co/papers/{pid}",
            f"https://arxiv.org/abs/{pid}",
            f"https://arxiv.org/pdf/{pid}",
        ):
            assert url in text and url in html
        if p.get("githubRepo"):
            assert p["githubRepo"] in text and p["githubRepo"] in html
    others = {d["paper"]["id"] for d in data} - {p["id"] for p in best}
    assert not any(f"huggingface.co/papers/{pid}" in text for pid in others)


@pytest.mark.parametrize(
    ("line", "key", "fix"),
    [
        (
            'trending = "yes"',
            "interests.trending",
            "'yes' is not true or false; write trending = true",
        ),
        ("trending = true\nmin_upvotes = -1", "interests.min_upvotes", "-1 is not a whole number"),
        (
            "trending = true\nmin_upvotes = 2.5",
            "interests.min_upvotes",
            "write e.g. min_upvotes = 5",
        ),
        (
            'trending = true\nmin_upvotes = "5"',
            "interests.min_upvotes",
            "'5' is not a whole number",
        ),
    ],
)
def test_check_names_file_key_and_fix_of_bad_trending_keys(
    here: Path, line: str, key: str, fix: str
) -> None:
    feed = here / "papers.json"
    feed.write_text("[]")
    setup(here, feed, line)
    result = invoke("check")
    assert result.exit_code == 1
    lines = [x for x in result.output.splitlines() if x.startswith("subscriptions/trend.toml")]
    assert len(lines) == 1 and lines[0].startswith(f"subscriptions/trend.toml: {key}: "), (
        result.output
    )
    assert fix in lines[0]


def test_trending_alone_is_something_to_match_on(here: Path) -> None:
    feed = here / "papers.json"
    feed.write_text("[]")
    setup(here, feed, "trending = true\nmin_upvotes = 0")
    result = invoke("check")
    assert "trend.toml" not in result.output, result.output


# --- settled counts ---------------------------------------------------------------------------
def _snapshot(data: list[dict[str, Any]], upvotes: dict[str, int]) -> bytes:
    changed = json.loads(json.dumps(data))
    for item in changed:
        if item["paper"]["id"] in upvotes:
            item["paper"]["upvotes"] = upvotes[item["paper"]["id"]]
    return json.dumps(changed).encode()


def _plan(store: Store, sub: Subscriber, now: datetime) -> list[str]:
    settings = Settings(database_url="sqlite://")
    (plan,) = select_entries(settings, store, [(sub, now)], now)
    return [i.entry.id for i in plan.items]


@responses.activate
def test_the_latest_fetch_of_a_day_decides_the_order(
    tmp_path: Path, shared_fixture: Fixture
) -> None:
    """Two snapshots of the same day whose counts differ: the later one decides, even downwards."""
    data = json.loads(shared_fixture(DAY).read_text(encoding="utf-8"))
    first, second, third, _fourth, fifth = (p["id"] for p in top(data, 5))
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    source = HfDaily("hf", {"days": 1}, http_session())
    sub = Subscriber("t", email="t@example.org", max_items=3, interests=Interests(trending=True))
    responses.get(API_URL, body=_snapshot(data, {}))
    with time_machine.travel(datetime(2026, 6, 12, 9, 0, tzinfo=UTC), tick=False):
        store.upsert_entries(source.fetch(FetchState()).entries)
    assert _plan(store, sub, NOON) == [f"arxiv:{first}", f"arxiv:{second}", f"arxiv:{third}"]
    # Later that day: the fifth overtakes everyone, the first lost upvotes (taken back).
    later = {fifth: 500, first: 60}
    responses.replace(responses.GET, API_URL, body=_snapshot(data, later))
    with time_machine.travel(datetime(2026, 6, 12, 21, 0, tzinfo=UTC), tick=False):
        result = source.fetch(FetchState())
        assert store.upsert_entries(result.entries) == (0, 2, 28)  # only the two that changed
    assert _plan(store, sub, NOON + timedelta(hours=10)) == [
        f"arxiv:{fifth}",
        f"arxiv:{second}",
        f"arxiv:{third}",
    ]
    assert store.get_entries([f"arxiv:{first}"])[f"arxiv:{first}"].extra["upvotes"] == 60
    # The same counts fetched again change nothing (no update, no refit of the matcher).
    with time_machine.travel(datetime(2026, 6, 12, 22, 0, tzinfo=UTC), tick=False):
        assert store.upsert_entries(source.fetch(FetchState()).entries) == (0, 0, 30)
    # A copy that does not say when it was counted (a file) only raises counts.
    stale = parse_daily_papers(json.loads(_snapshot(data, {})))
    store.upsert_entries(stale)
    assert store.get_entries([f"arxiv:{first}"])[f"arxiv:{first}"].extra["upvotes"] == 118


def test_merge_takes_the_counts_counted_later() -> None:
    old = Entry(
        "arxiv:1",
        "T",
        extra={"upvotes": 20, "comments": 3, "counted_at": "2026-06-12T09:00:00+00:00"},
    )
    newer = Entry("arxiv:1", "T", extra={"upvotes": 18, "counted_at": "2026-06-12T21:00:00+00:00"})
    older = Entry("arxiv:1", "T", extra={"upvotes": 25, "counted_at": "2026-06-12T08:00:00+00:00"})
    assert merge_entry(old, newer).extra == {
        "upvotes": 18,
        "comments": 3,
        "counted_at": "2026-06-12T21:00:00+00:00",
    }
    assert merge_entry(old, older).extra["upvotes"] == 25  # counted earlier: it only raises them
    assert merge_entry(old, older).extra["counted_at"] == "2026-06-12T09:00:00+00:00"


# --- mixing sources -----------------------------------------------------------------------------
RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Lab blog</title>
<link>https://blog.example.org/</link>
<item><title>Our notes on KV cache quantization in production</title>
<link>https://blog.example.org/kv-cache-quantization</link>
<description>How we quantize the KV cache to 2 bits and what it costs.</description>
<pubDate>Thu, 26 Nov 2026 09:00:00 +0000</pubDate></item>
</channel></rss>"""
ARXIV_RSS = Path(__file__).parent / "data" / "paper_arxiv_rss.xml"
HF = Path(__file__).parent / "data" / "paper_hf.json"


def test_an_hf_paper_and_its_arxiv_listing_are_one_entry_that_keeps_its_upvotes(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    hf = parse_daily_papers(json.loads(HF.read_text(encoding="utf-8")), "hf")
    arxiv, _ = parse_feed(ARXIV_RSS.read_bytes(), "https://rss.arxiv.org/rss/cs.LG", "arxiv")
    blog, _ = parse_feed(RSS, "https://blog.example.org/feed.xml", "blog")
    store.upsert_entries(hf)
    store.upsert_entries(arxiv)  # after HF: the same paper, no counts
    store.upsert_entries(blog)
    paper = store.get_entries(["arxiv:2611.04242"])["arxiv:2611.04242"]
    assert paper.extra["upvotes"] == 17 and popularity(paper) is not None
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    relevance = Subscriber("r", email="r@example.org", interests=Interests(keywords=("KV cache",)))
    both = Subscriber(
        "b",
        email="b@example.org",
        interests=Interests(keywords=("KV cache",), trending=True, min_upvotes=5),
    )
    for sub in (relevance, both):
        got = _plan(store, sub, now)
        assert got.count("arxiv:2611.04242") == 1
        assert "https://blog.example.org/kv-cache-quantization" in " ".join(
            e.url for e in store.get_entries(got).values()
        ), f"{sub.id}: the blog post without counts did not reach a relevance subscriber"
    only = Subscriber("o", email="o@example.org", interests=Interests(trending=True))
    assert _plan(store, only, now) == ["arxiv:2611.04242"]  # trending alone: only what has counts


def _item(i: int, score: float, upvotes: int | None) -> DigestItem:
    extra = {} if upvotes is None else {"upvotes": upvotes}
    return DigestItem(Entry(f"e{i}", f"T{i}", extra=extra), score)


def test_blend_is_half_relevance_half_popularity_and_keeps_uncounted_items() -> None:
    items = [_item(0, 0.9, 1), _item(1, 0.8, 100), _item(2, 0.5, None), _item(3, 0.4, 2)]
    assert [i.entry.id for i in blend(items)] == ["e1", "e0", "e3", "e2"]
    # e0 (1 upvote) is under the floor; e2 (0.125 + 0) now beats e3 (0 + 0.5 × log 3 / log 101)
    assert [i.entry.id for i in blend(items, floor=2)] == ["e1", "e2", "e3"]
    assert "trending: ranked by relevance and upvotes" in blend(items)[0].why
    assert blend(items)[-1].why == ()  # e2 has no counts: nothing said about them


def test_popularity_counts_comments_and_stars_and_unknown_is_not_zero() -> None:
    assert popularity(Entry("a", "A")) is None
    assert popularity(Entry("a", "A", extra={"upvotes": 0})) == 0
    assert popularity(Entry("a", "A", extra={"upvotes": 3, "comments": 2, "github_stars": 50})) == 3
    assert popularity(Entry("a", "A", extra={"github_stars": 50})) == 5
    ranked = by_popularity(
        [
            Entry("x", "X"),
            Entry("y", "Y", extra={"upvotes": 1}),
            Entry("z", "Z", extra={"upvotes": 9}),
            Entry("w", "W", extra={"upvotes": 1, "comments": 1}),
            Entry("s", "S", extra={"upvotes": 8, "comments": 40, "github_stars": 900}),
        ]
    )
    assert [e.id for e in ranked] == ["z", "s", "w", "y", "x"]  # the upvotes decide


def test_a_trending_digest_never_repeats_and_takes_what_came_since_its_last_day(
    tmp_path: Path,
) -> None:
    from bot.delivery import run_once

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", outbox_dir=tmp_path / "out"
    )
    store = Store(settings.database_url)
    day1 = datetime(2026, 6, 10, tzinfo=UTC)
    store.upsert_entries(
        [
            Entry(f"arxiv:2606.0000{i}", f"Paper {i}", published=day1, extra={"upvotes": 10 * i})
            for i in range(1, 5)
        ]
    )
    sub = Subscriber(
        "t",
        email="t@example.org",
        schedule="0 8 * * *",
        max_items=2,
        interests=Interests(trending=True, min_upvotes=15),
    )
    run_once(settings, store, [sub], now=day1 + timedelta(hours=9))
    assert _plan(store, sub, day1 + timedelta(days=1, hours=9)) == ["arxiv:2606.00002"]
    store.upsert_entries(
        [
            Entry(
                "arxiv:2606.00009",
                "Late",
                published=day1 - timedelta(days=1),
                extra={"upvotes": 99},
            )
        ]
    )  # featured before the last digest's day: not "since the last digest"
    assert "arxiv:2606.00009" not in _plan(store, sub, day1 + timedelta(days=1, hours=9))


def test_exclude_keeps_papers_out_of_a_trending_digest_as_the_matcher_reads_it() -> None:
    """On word boundaries with light stemming, as in a relevance digest: "RL" is not "world",
    "quantization" keeps out "quantized", and HF's ai_keywords count as part of the text."""
    papers = [
        Entry("a", "World models for video", extra={"upvotes": 50}),
        Entry("b", "RL fine-tuning at scale", extra={"upvotes": 40}),
        Entry("c", "Quantized attention kernels", extra={"upvotes": 30}),
        Entry("d", "A benchmark", extra={"upvotes": 20, "ai_keywords": ["RL"]}),
        Entry("e", "Curling robots", extra={"upvotes": 10}),
    ]
    pool = trending_pool(
        Interests(trending=True, exclude=("RL", "quantization")), papers, set(), None
    )
    assert [e.id for e in pool] == ["a", "e"]
    assert [e.id for e in trending_pool(Interests(trending=True), papers, {"a"}, None)] == [
        "b",
        "c",
        "d",
        "e",
    ]


# --- Slack ------------------------------------------------------------------------------------
def test_a_slack_channel_with_trending_gets_the_days_top_papers_with_their_counts(
    tmp_path: Path, shared_fixture: Fixture, slack_server: Any, send_clock: list[float]
) -> None:
    from test_render import check_slack_limits

    from bot.delivery import Deliverer, run_once

    data = json.loads(shared_fixture(DAY).read_text(encoding="utf-8"))
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        base_url="https://digest.example.org",
        secret_key="k",
        slack_token="xoxb-test",
        slack_api_url=slack_server.url,
    )
    store = Store(settings.database_url)
    store.upsert_entries(parse_daily_papers(data, "hf"))
    sub = Subscriber(
        "lab",
        slack_channel="#papers",
        max_items=5,
        interests=Interests(trending=True),
    )
    d = Deliverer(settings, store)
    try:
        report = run_once(settings, store, [sub], now=NOON, deliverer=d)
    finally:
        d.close()
    assert [o.status for o in report.outcomes] == ["sent"]
    (call,) = slack_server.calls("chat.postMessage")
    body = call["body"]
    check_slack_limits(body)
    assert body["blocks"][0]["text"]["text"].startswith("5 trending papers")
    sections = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    contexts = [b["elements"][0]["text"] for b in body["blocks"] if b["type"] == "context"]
    best = top(data, 5)
    assert len(sections) == 5
    assert contexts[-1].startswith("…and 25 more matched; <https://digest.example.org/digest/")
    for p, section, context in zip(best, sections, contexts[:5], strict=True):
        assert f"<https://arxiv.org/abs/{p['id']}|" in section
        assert f"<https://huggingface.co/papers/{p['id']}|Hugging Face>" in section
        assert f"<https://arxiv.org/pdf/{p['id']}|PDF>" in section
        assert context.startswith(f"▲ {p['upvotes']} upvotes")


@pytest.mark.slow
def test_spamassassin_scores_a_rich_trending_digest_low(
    tmp_path: Path, shared_fixture: Fixture
) -> None:
    """Counts, TL;DR and the four links per item: SpamAssassin still scores it ≤ 1.0."""
    import re
    import shutil
    import subprocess

    from bot.channels.email import build_message, message_bytes
    from bot.models import Digest
    from bot.trending import by_popularity

    if shutil.which("spamassassin") is None:
        pytest.skip("spamassassin is not installed (Debian package 'spamassassin')")
    entries = by_popularity(parse_daily_papers(json.loads(shared_fixture(DAY).read_bytes()), "hf"))
    sub = Subscriber("lab", name="Lab", email="lab@example.org", interests=Interests(trending=True))
    digest = Digest(
        "lab.20260612T0800Z",
        sub,
        datetime(2026, 6, 12, 8, tzinfo=UTC),
        tuple(DigestItem(e, 1.0) for e in entries[:10]),
        more=20,
    )
    settings = Settings(
        base_url="https://digest.example.org",
        secret_key="k",
        from_addr="Lab digest <digest@example.org>",
    )
    raw = message_bytes(build_message(digest, settings))
    out = subprocess.run(
        ["spamassassin", "-L", "-t"],
        input=raw,
        capture_output=True,
        env={**os.environ, "HOME": str(tmp_path)},
        timeout=120,
        check=True,
    ).stdout
    status = email.message_from_bytes(out, policy=email.policy.default)["X-Spam-Status"]
    m = re.search(r"score=(-?[\d.]+)", status)
    assert m and float(m.group(1)) <= 1.0, status


# --- the store's day and week queries, on SQLite and PostgreSQL ---------------------------------
def test_day_queries_and_the_latest_counted_day(store: Store) -> None:
    day = datetime(2026, 6, 12, tzinfo=UTC)
    store.upsert_entries(
        [
            Entry("arxiv:2606.00001", "Counted", published=day, extra={"upvotes": 3}),
            Entry("arxiv:2606.00002", "Late", published=day + timedelta(hours=23, minutes=59)),
            Entry("https://blog.example.org/x", "Newer post", published=day + timedelta(days=2)),
        ]
    )
    got = store.entries_published_between(day, day + timedelta(days=1))
    assert [e.id for e in got] == ["arxiv:2606.00002", "arxiv:2606.00001"]
    assert store.latest_published(day + timedelta(days=30)) == day  # the latest day with upvotes
    assert store.latest_published(day + timedelta(days=30), counted=False) == day + timedelta(
        days=2
    )
    assert store.latest_published(day) is None


def test_a_weekly_trending_digest_is_the_top_of_the_week(tmp_path: Path) -> None:
    from bot.delivery import run_once

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", outbox_dir=tmp_path / "out"
    )
    store = Store(settings.database_url)
    monday = datetime(2026, 6, 1, 7, tzinfo=UTC)
    sub = Subscriber(
        "w",
        email="w@example.org",
        schedule="0 7 * * 1",
        max_items=3,
        interests=Interests(trending=True),
    )
    run_once(settings, store, [sub], now=monday)  # nothing yet: an empty digest marks the slot
    stars = {(2, 0): 90, (5, 1): 80, (7, 2): 70}  # the week's top three, on three days
    store.upsert_entries(
        [
            Entry(
                f"arxiv:2606.{d:02d}{i:03d}",
                f"Day {d} paper {i}",
                published=datetime(2026, 6, d, tzinfo=UTC),
                extra={"upvotes": stars.get((d, i), d + i)},
            )
            for d in range(1, 8)
            for i in range(3)
        ]
        + [
            Entry(
                "arxiv:2605.31000",
                "Last week's",
                published=monday - timedelta(days=1, hours=7),
                extra={"upvotes": 500},
            )
        ]
    )
    got = _plan(store, sub, monday + timedelta(days=7))
    assert got == ["arxiv:2606.02000", "arxiv:2606.05001", "arxiv:2606.07002"]
    # Featured on the Monday of the last digest, after it: older than the 7-day lookback by
    # then, still the top of this week.
    store.upsert_entries(
        [
            Entry(
                "arxiv:2606.01999",
                "Monday late",
                published=monday - timedelta(hours=7),
                extra={"upvotes": 95},
            )
        ]
    )
    assert _plan(store, sub, monday + timedelta(days=7))[0] == "arxiv:2606.01999"
