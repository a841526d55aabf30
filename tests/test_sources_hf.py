"""Hugging Face Daily Papers: both schemas, and the source fetching day by day."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
import time_machine

from bot.errors import SourceError
from bot.ingest import http_session
from bot.sources import FetchState
from bot.sources.hf_daily import API_URL, HfDaily, parse_daily_papers, read_daily_papers

Fixture = Callable[[str], Path]


def load(shared_fixture: Fixture, name: str) -> Any:
    return json.loads(shared_fixture(f"hf/{name}").read_text(encoding="utf-8"))


def test_current_schema(shared_fixture: Fixture) -> None:
    data = load(shared_fixture, "hf_daily_papers_2026-06-12.json")
    entries = parse_daily_papers(data, "hf")
    assert len(entries) == 30
    by_id = {e.id: e for e in entries}
    raw = next(d["paper"] for d in data if d["paper"]["id"] == "2606.13594")
    e = by_id["arxiv:2606.13594"]
    assert e.url == "https://arxiv.org/abs/2606.13594"
    assert e.extra["hf_url"] == "https://huggingface.co/papers/2606.13594"
    assert e.extra["upvotes"] == raw["upvotes"]
    assert e.extra["ai_keywords"] == raw["ai_keywords"] and list(e.tags) == raw["ai_keywords"]
    assert e.authors == tuple(a["name"] for a in raw["authors"])
    assert e.published == datetime(2026, 6, 12, tzinfo=UTC)  # submittedOnDailyAt, the featured day
    assert "\n" not in e.summary and e.source == "hf"
    assert sum(1 for e in entries if "github_repo" in e.extra) == sum(
        1 for d in data if d["paper"].get("githubRepo")
    )


def test_hidden_authors_are_still_authors(shared_fixture: Fixture) -> None:
    entries = parse_daily_papers(load(shared_fixture, "hf_daily_papers_2026-06-12.json"))
    (e,) = [e for e in entries if e.id == "arxiv:2606.12575"]
    assert "Dengyang Jiang" in e.authors


def test_2024_schema_hard_wrapped_title_and_day(shared_fixture: Fixture) -> None:
    entries = parse_daily_papers(
        load(shared_fixture, "hf_daily_papers_2024-10-25_first2entries.json")
    )
    first = entries[0]
    assert first.id == "arxiv:2410.17243"
    assert (
        first.title
        == "Breaking the Memory Barrier: Near Infinite Batch Size Scaling for Contrastive Loss"
    )
    assert first.extra["upvotes"] == 64
    assert (
        first.published is not None and first.published.date().isoformat() == "2024-10-25"
    )  # sent to Daily Papers


def test_trimmed_schema_without_ai_fields(shared_fixture: Fixture) -> None:
    entries = parse_daily_papers(
        load(shared_fixture, "hf_daily_papers_2026-08-03_3entries_pretty.json")
    )
    assert len(entries) == 3 and all("ai_keywords" not in e.extra for e in entries)
    assert all(e.published == datetime(2026, 8, 3, tzinfo=UTC) for e in entries)


def test_title_zero_and_junk_items() -> None:
    data = [
        {"paper": {"id": "2104.12255", "title": "0", "authors": []}},
        {"paper": {}},
        "junk",
        {"paper": {"id": "not-an-id"}},
    ]
    (e,) = parse_daily_papers(data)
    assert e.title == "0" and "upvotes" not in e.extra  # no count sent: none stored


def test_not_an_array_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected a JSON array"):
        parse_daily_papers({"papers": []})
    with pytest.raises(ValueError, match="error: Invalid date"):
        parse_daily_papers({"error": "Invalid date"})


@responses.activate
@time_machine.travel(datetime(2026, 6, 12, 9, 0, tzinfo=UTC), tick=False)
def test_fetch_asks_day_by_day_and_remembers_the_last(shared_fixture: Fixture) -> None:
    body = shared_fixture("hf/hf_daily_papers_2026-06-12.json").read_bytes()
    for day in ("2026-06-10", "2026-06-11"):
        responses.get(
            API_URL,
            json=[],
            match=[responses.matchers.query_param_matcher({"date": day, "limit": "100"})],
        )
    responses.get(
        API_URL,
        body=body,
        match=[responses.matchers.query_param_matcher({"date": "2026-06-12", "limit": "100"})],
    )
    source = HfDaily("hf", {}, http_session())
    result = source.fetch(FetchState())
    assert len(result.entries) == 30
    assert result.state.cursor == {"last_day": "2026-06-12"}
    assert [c.request.url.split("date=")[1][:10] for c in responses.calls] == [
        "2026-06-10",
        "2026-06-11",
        "2026-06-12",
    ]
    responses.calls.reset()
    again = source.fetch(
        result.state
    )  # later the same day: only today, again (new papers, new upvotes)
    assert len(responses.calls) == 1 and len(again.entries) == 30


@responses.activate
@time_machine.travel(datetime(2026, 6, 12, 9, 0, tzinfo=UTC), tick=False)
def test_fetch_errors_name_the_day() -> None:
    responses.get(API_URL, status=500)
    with pytest.raises(SourceError, match=r"date=2026-06-12\): HTTP 500; try again later"):
        HfDaily("hf", {"days": 1}, http_session()).fetch(FetchState())
    responses.replace(responses.GET, API_URL, body=b"<html>oops</html>")
    with pytest.raises(SourceError, match="check the url"):
        HfDaily("hf", {"days": 1}, http_session()).fetch(FetchState())


MALFORMED = Path(__file__).parent / "data" / "hf_daily_malformed.json"


def test_malformed_items_are_skipped_with_a_warning_naming_each() -> None:
    entries, warnings = read_daily_papers(json.loads(MALFORMED.read_text(encoding="utf-8")), "hf")
    assert [e.id for e in entries] == ["arxiv:2606.00001", "arxiv:2606.00005"]
    assert entries[1].authors == ("Charles Babbage",)
    assert warnings == [
        "skipped item 2 of the daily papers (titled 'A paper without an id'): it has no paper.id; the API sent a malformed item",
        "skipped item 3 of the daily papers (paper id '2606.00002'): paper.ai_keywords is a number; the API sent a malformed item",
        "skipped item 4 of the daily papers (paper id '2606.00003'): paper.summary is an object; the API sent a malformed item",
        "skipped item 5 of the daily papers (paper id '2606.00004'): paper.authors is a string; the API sent a malformed item",
        'skipped item 6 of the daily papers ({"paper": "not an object"}): item.paper is a string; the API sent a malformed item',
        "skipped item 7 of the daily papers (42): the item is a number, not an object; the API sent a malformed item",
    ]


@responses.activate
@time_machine.travel(datetime(2026, 6, 12, 9, 0, tzinfo=UTC), tick=False)
def test_a_malformed_item_does_not_fail_the_source() -> None:
    responses.get(API_URL, body=MALFORMED.read_bytes(), content_type="application/json")
    result = HfDaily("hf", {"days": 1}, http_session()).fetch(FetchState())
    assert [e.id for e in result.entries] == ["arxiv:2606.00001", "arxiv:2606.00005"]
    assert len(result.warnings) == 6
    assert result.warnings[1].startswith(
        "2026-06-12: skipped item 3 of the daily papers (paper id '2606.00002')"
    )


def _item(pid: str, **fields: Any) -> dict[str, Any]:
    paper = {"id": pid, "title": "T", **{k: v for k, v in fields.items() if k != "numComments"}}
    item: dict[str, Any] = {"paper": paper}
    if "numComments" in fields:
        item["numComments"] = fields["numComments"]
    return item


def test_only_counts_the_api_sent_are_counts() -> None:
    entries = parse_daily_papers(
        [
            _item("2401.00001"),  # no upvotes, no numComments
            _item("2401.00002", upvotes=None, numComments=None),
            _item("2401.00003", upvotes=0, numComments=0),  # fell to 0: still a count
            _item("2401.00004", upvotes=True, numComments="3"),  # not numbers
            _item("2401.00005", upvotes=12, numComments=4),
        ]
    )
    counts = [{k: e.extra.get(k) for k in ("upvotes", "comments") if k in e.extra} for e in entries]
    assert counts == [{}, {}, {"upvotes": 0, "comments": 0}, {}, {"upvotes": 12, "comments": 4}]


def test_a_later_fetch_without_upvotes_keeps_them_and_a_zero_count_is_stored(
    tmp_path: Path,
) -> None:
    from bot.store import Store

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    t0 = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)

    def fetched(item: dict[str, Any], stamp: str) -> list[Any]:
        return [
            replace(e, extra={**e.extra, "counted_at": stamp}) for e in parse_daily_papers([item])
        ]

    try:
        store.upsert_entries(
            fetched(_item("2401.00001", upvotes=17, numComments=2), "2026-06-12T09:00:00+00:00"),
            now=t0,
        )
        store.upsert_entries(fetched(_item("2401.00001"), "2026-06-12T10:00:00+00:00"), now=t0)
        e = store.get_entries(["arxiv:2401.00001"])["arxiv:2401.00001"]
        assert e.extra["upvotes"] == 17 and e.extra["comments"] == 2
        store.upsert_entries(
            fetched(_item("2401.00001", upvotes=15, numComments=0), "2026-06-12T11:00:00+00:00"),
            now=t0,
        )
        e = store.get_entries(["arxiv:2401.00001"])["arxiv:2401.00001"]
        assert e.extra["upvotes"] == 15 and e.extra["comments"] == 0  # the latest fetch's counts
    finally:
        store.close()


def test_a_date_past_what_utc_can_hold_is_no_date(tmp_path: Path) -> None:
    from bot.store import Store

    (far, near) = parse_daily_papers(
        [
            _item("2401.00001", submittedOnDailyAt="9999-12-31T23:00:00-05:00"),
            _item("2401.00002", submittedOnDailyAt="2026-06-12T00:00:00-05:00"),
        ]
    )
    assert far.published is None
    assert near.published == datetime(2026, 6, 12, 5, 0, tzinfo=UTC)
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:  # the whole batch is stored
        assert store.upsert_entries([far, near], now=datetime(2026, 6, 12, tzinfo=UTC))[0] == 2
    finally:
        store.close()
