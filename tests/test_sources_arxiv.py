"""arXiv: listing feeds (2024+ RSS and the old RDF), API responses, and the API source's paging."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from bot.errors import SourceError
from bot.ingest import http_session
from bot.sources import FetchState
from bot.sources.arxiv_api import Arxiv, listing_url
from bot.sources.feeds import ArxivApiError, read_feed

Fixture = Callable[[str], Path]
API = "https://export.arxiv.org/api/query"


def entries_of(shared_fixture: Fixture, name: str) -> list[Any]:
    return read_feed(shared_fixture(name).read_bytes(), "https://rss.arxiv.org/rss/cs.LG").entries


def test_listing_announce_types_versions_and_authors(shared_fixture: Fixture) -> None:
    entries = entries_of(
        shared_fixture,
        "arxiv/rss/arxiv_rss_2026-09-24_cs.LG+cs.AI+cs.CL+stat.ML_4items_new-cross-replace.xml",
    )
    assert [e.id for e in entries] == [
        "arxiv:2609.26811",
        "arxiv:2609.26820",
        "arxiv:2205.06398",
        "arxiv:2009.13987",
    ]
    assert [e.extra["announce_type"] for e in entries] == ["new", "new", "cross", "replace"]
    assert [e.extra["version"] for e in entries] == [1, 1, 2, 3]
    cross = entries[2]
    assert cross.authors == ("Pritam Dey", "Zhengwu Zhang", "David B. Dunson")
    assert cross.url == "https://arxiv.org/abs/2205.06398"
    assert not cross.summary.startswith(("arXiv:", "Abstract:"))
    assert "Announce Type" not in cross.summary
    assert cross.published == datetime(2026, 9, 24, 4, 0, tzinfo=UTC)
    assert "stat.ME" in cross.tags


def test_listing_with_eighteen_authors_and_latex(shared_fixture: Fixture) -> None:
    entries = entries_of(shared_fixture, "arxiv/rss/arxiv_rss_2026-04-27_cs.AI_3items.xml")
    assert len(entries) == 3 and all(e.extra["announce_type"] == "new" for e in entries)
    assert (
        max(
            len(e.authors)
            for e in entries
            + entries_of(shared_fixture, "arxiv/rss/arxiv_rss_2026-04-27_cs.LG_3items.xml")
        )
        >= 18
    )


def test_old_rdf_listing(shared_fixture: Fixture) -> None:
    entries = entries_of(shared_fixture, "arxiv/rss/arxiv_rss_old_rdf_2018-05-23_hep-ex_3items.xml")
    assert [e.id for e in entries] == ["arxiv:1805.08875", "arxiv:1805.09166", "arxiv:1805.06430"]
    assert [e.extra["announce_type"] for e in entries] == ["new", "cross", "replace"]
    assert [e.extra["version"] for e in entries] == [1, 1, 2]
    assert (
        entries[1].title == "Recent Top quark results from the Tevatron."
    )  # the "(arXiv:… CROSS LISTED)" tail is gone
    assert entries[2].authors[:2] == ("Shu-Sheng Xu", "Zhu-Fang Cui")
    assert "<p>" not in entries[0].summary and entries[0].summary.startswith(
        "In 2015 the first collisions"
    )
    # Items carry no date; the channel's dc:date (2018-05-23T20:30-05:00) stands in.
    assert all(e.published == datetime(2018, 5, 24, 1, 30, tzinfo=UTC) for e in entries)
    assert "hep-ex" in entries[0].tags


@pytest.mark.parametrize(
    ("name", "ids"),
    [
        ("arxiv_api_2026_idlist_1605.08386.xml", ["arxiv:1605.08386"]),
        ("arxiv_api_2026_idlist_astro-ph_0601001_oldstyle_id.xml", ["arxiv:astro-ph/0601001"]),
        ("arxiv_api_2026_idlist_two_ids_one_missing.xml", ["arxiv:1707.08567"]),
        ("arxiv_api_2026_idlist_0000.0000_zero_results.xml", []),
        ("arxiv_api_2016_idlist_1111.2011v2.xml", ["arxiv:1111.2011"]),
    ],
)
def test_api_ids(shared_fixture: Fixture, name: str, ids: list[str]) -> None:
    assert [e.id for e in entries_of(shared_fixture, f"arxiv/api/{name}")] == ids


def test_api_two_ids_one_missing_keeps_all_34_authors(shared_fixture: Fixture) -> None:
    (e,) = entries_of(shared_fixture, "arxiv/api/arxiv_api_2026_idlist_two_ids_one_missing.xml")
    assert len(e.authors) == 34


def test_api_2016_search_page(shared_fixture: Fixture) -> None:
    entries = entries_of(shared_fixture, "arxiv/api/arxiv_api_2016_search_au-del_maestro_max10.xml")
    assert len(entries) == 10 and all(any("Del Maestro" in a for a in e.authors) for e in entries)


def test_api_title_zero_is_kept(shared_fixture: Fixture) -> None:
    (e,) = entries_of(shared_fixture, "arxiv/api/arxiv_api_2026_idlist_2104.12255v1_title_is_0.xml")
    assert e.title == "0" and e.extra["version"] == 1


def test_api_2016_format_unwraps_and_keeps_all_authors(shared_fixture: Fixture) -> None:
    (e,) = entries_of(shared_fixture, "arxiv/api/arxiv_api_2016_idlist_1111.2011v2.xml")
    assert "\n" not in e.title and "  " not in e.title
    assert not e.summary.startswith(" ")
    assert e.authors == ("James M. Murray", "Adrian Del Maestro", "Zlatko Tesanovic")
    assert e.extra["version"] == 2 and e.extra["pdf_url"].startswith(
        "http://arxiv.org/pdf/1111.2011v2"
    )


def test_api_non_ascii_authors_and_primary_category(shared_fixture: Fixture) -> None:
    entries = entries_of(
        shared_fixture, "arxiv/api/arxiv_api_2026_search_all-testing_start0_max10.xml"
    )
    assert entries[1].authors[0] == "Aurora Ramírez"
    lg = entries_of(
        shared_fixture, "arxiv/api/arxiv_api_2026_search_transformer_AND_cat_cs.LG_max5.xml"
    )
    assert lg[0].extra["primary_category"] == "cs.RO" and "cs.LG" in lg[0].tags


def test_api_error_feed_is_an_error_not_a_paper(shared_fixture: Fixture) -> None:
    with pytest.raises(ArxivApiError, match="incorrect id format for abc"):
        entries_of(shared_fixture, "arxiv/api/arxiv_api_2026_idlist_abc_HTTP400_error.xml")


def test_listing_url() -> None:
    assert listing_url(["cs.LG", "cs.AI"]) == "https://rss.arxiv.org/rss/cs.LG+cs.AI"
    assert listing_url("cs.LG, stat.ML") == "https://rss.arxiv.org/rss/cs.LG+stat.ML"


# --- the API source, with the transport mocked ------------------------------------------------


def api_source(**options: Any) -> Arxiv:
    return Arxiv("arxiv-q", {"query": "all:testing", **options}, http_session())


@responses.activate
def test_api_pages_dedupe_and_wait_three_seconds(shared_fixture: Fixture, fake_clock: Any) -> None:
    page0 = shared_fixture(
        "arxiv/api/arxiv_api_2026_search_all-testing_start0_max10.xml"
    ).read_bytes()
    page5 = shared_fixture(
        "arxiv/api/arxiv_api_2026_search_all-testing_start5_max10.xml"
    ).read_bytes()
    responses.get(
        API,
        body=page0,
        match=[
            responses.matchers.query_param_matcher(
                {
                    "search_query": "all:testing",
                    "start": "0",
                    "max_results": "10",
                    "sortBy": "relevance",
                    "sortOrder": "descending",
                }
            )
        ],
    )
    responses.get(
        API,
        body=page5,
        match=[
            responses.matchers.query_param_matcher(
                {
                    "search_query": "all:testing",
                    "start": "10",
                    "max_results": "5",
                    "sortBy": "relevance",
                    "sortOrder": "descending",
                }
            )
        ],
    )
    result = api_source(max_results=15, page_size=10, sort_by="relevance").fetch(FetchState())
    ids = [e.id for e in result.entries]
    assert len(ids) == len(set(ids)) == 15  # the second page repeats 5 of the first
    assert fake_clock.sleeps == [pytest.approx(3.0)]
    assert responses.calls[0].request.headers["User-Agent"].startswith("digestbot/")


@responses.activate
def test_api_backs_off_on_503_and_429(shared_fixture: Fixture, fake_clock: Any) -> None:
    body = shared_fixture("arxiv/api/arxiv_api_2026_idlist_1605.08386.xml").read_bytes()
    responses.get(API, status=503, headers={"Retry-After": "7"})
    responses.get(API, status=429)
    responses.get(API, body=body)
    result = api_source(max_results=10).fetch(FetchState())
    assert [e.id for e in result.entries] == ["arxiv:1605.08386"]
    assert (
        7.0 in fake_clock.sleeps and 10.0 in fake_clock.sleeps
    )  # Retry-After, then the default backoff (5 s, doubled)
    assert all(s >= 3.0 for s in fake_clock.sleeps)


@responses.activate
def test_api_gives_up_after_retries(fake_clock: Any) -> None:
    responses.get(API, status=503)
    with pytest.raises(SourceError, match="HTTP 503; try again later"):
        api_source().fetch(FetchState())
    assert len(responses.calls) == 4


@responses.activate
def test_api_error_entry_with_http_400_names_the_query(
    shared_fixture: Fixture, fake_clock: Any
) -> None:
    body = shared_fixture("arxiv/api/arxiv_api_2026_idlist_abc_HTTP400_error.xml").read_bytes()
    responses.get(API, body=body, status=400)
    with pytest.raises(
        SourceError, match=r"incorrect id format for abc; check the query 'all:testing'"
    ):
        api_source().fetch(FetchState())


@responses.activate
def test_api_zero_results_is_fine(shared_fixture: Fixture, fake_clock: Any) -> None:
    responses.get(
        API,
        body=shared_fixture(
            "arxiv/api/arxiv_api_2026_idlist_0000.0000_zero_results.xml"
        ).read_bytes(),
    )
    assert api_source().fetch(FetchState()).entries == []
    assert len(responses.calls) == 1


@responses.activate
def test_api_stops_paging_at_what_it_already_has(shared_fixture: Fixture, fake_clock: Any) -> None:
    body = shared_fixture(
        "arxiv/api/arxiv_api_2026_search_transformer_AND_cat_cs.LG_max5.xml"
    ).read_bytes()
    responses.get(API, body=body)
    first = api_source(max_results=20, page_size=5).fetch(FetchState())
    newest = first.state.cursor["newest"]
    assert newest.startswith("2026-06-11T17:59:49")
    calls = len(responses.calls)
    again = api_source(max_results=20, page_size=5).fetch(first.state)
    assert len(responses.calls) - calls == 1  # the first page reached known entries: no second page
    assert {e.id for e in again.entries} == {e.id for e in first.entries}


@responses.activate
def test_listing_fetch_and_empty_weekend_feed(fake_clock: Any) -> None:
    weekend = b"""<?xml version='1.0' encoding='UTF-8'?>
<rss xmlns:arxiv="http://arxiv.org/schemas/atom" version="2.0"><channel><title>cs.LG updates on arXiv.org</title>
<link>http://rss.arxiv.org/rss/cs.LG</link><description>cs.LG updates</description>
<skipDays><day>Sunday</day><day>Saturday</day></skipDays></channel></rss>"""
    responses.get(
        "https://rss.arxiv.org/rss/cs.LG+cs.AI", body=weekend, content_type="application/rss+xml"
    )
    source = Arxiv("arxiv-lg", {"categories": ["cs.LG", "cs.AI"]}, http_session())
    result = source.fetch(FetchState())
    assert result.entries == [] and result.warnings == [] and not result.not_modified


@responses.activate
def test_listing_http_error_names_url_and_fix(fake_clock: Any) -> None:
    responses.get("https://rss.arxiv.org/rss/cs.XX", status=404)
    with pytest.raises(
        SourceError, match=re.escape("https://rss.arxiv.org/rss/cs.XX: HTTP 404; check the url")
    ):
        Arxiv("bad", {"categories": "cs.XX"}, http_session()).fetch(FetchState())


@responses.activate
def test_api_connection_error_is_a_source_error(fake_clock: Any) -> None:
    responses.get(API, body=requests.ConnectionError("refused"))
    with pytest.raises(SourceError, match="cannot connect"):
        api_source().fetch(FetchState())


@responses.activate
def test_api_keeps_the_pages_it_got_when_a_later_one_fails(
    shared_fixture: Fixture, fake_clock: Any
) -> None:
    page0 = shared_fixture(
        "arxiv/api/arxiv_api_2026_search_all-testing_start0_max10.xml"
    ).read_bytes()
    responses.get(API, body=page0)
    responses.get(API, status=500)
    result = api_source(max_results=20, page_size=10, sort_by="relevance").fetch(FetchState())
    assert len(result.entries) == 10
    assert any(
        w.startswith("stopped after 10 entries") and "HTTP 500" in w for w in result.warnings
    )


OLD_CURSOR = {"newest": "2000-01-01T00:00:00+00:00"}


@responses.activate
@pytest.mark.parametrize("cursor", [{}, OLD_CURSOR])
def test_api_a_walk_cut_by_a_failed_page_keeps_the_cursor(
    shared_fixture: Fixture, fake_clock: Any, cursor: dict[str, str]
) -> None:
    page0 = shared_fixture(
        "arxiv/api/arxiv_api_2026_search_all-testing_start0_max10.xml"
    ).read_bytes()
    responses.get(API, body=page0)
    responses.get(API, status=503)  # page 2 fails, retries and all
    result = api_source(max_results=30, page_size=10).fetch(FetchState(cursor=cursor))
    assert len(result.entries) == 10
    assert any(w.startswith("stopped after 10 entries") for w in result.warnings)
    # the papers past page 1 were never read: the next fetch must walk down to them again
    assert result.state.cursor == cursor


@responses.activate
def test_api_an_empty_page_inside_the_results_is_a_flake_not_the_end(
    shared_fixture: Fixture, fake_clock: Any
) -> None:
    page0 = shared_fixture(
        "arxiv/api/arxiv_api_2026_search_all-testing_start0_max10.xml"
    ).read_bytes()
    empty = shared_fixture(
        "arxiv/api/arxiv_api_2026_idlist_0000.0000_zero_results.xml"
    ).read_bytes()
    # arXiv's known flake: a page with no entries although totalResults counts many more
    flaky = empty.replace(b"<opensearch:totalResults>0<", b"<opensearch:totalResults>214881<")
    assert flaky != empty
    responses.get(API, body=page0)
    responses.get(API, body=flaky)
    result = api_source(max_results=30, page_size=10).fetch(FetchState(cursor=OLD_CURSOR))
    assert len(result.entries) == 10 and len(responses.calls) == 2
    assert any(
        w.startswith("stopped after 10 entries") and "empty page at start=10 of 214881" in w
        for w in result.warnings
    )
    assert result.state.cursor == OLD_CURSOR


@responses.activate
def test_api_an_empty_first_page_inside_the_results_is_an_error(
    shared_fixture: Fixture, fake_clock: Any
) -> None:
    empty = shared_fixture(
        "arxiv/api/arxiv_api_2026_idlist_0000.0000_zero_results.xml"
    ).read_bytes()
    responses.get(API, body=empty.replace(b"totalResults>0<", b"totalResults>5<"))
    with pytest.raises(SourceError, match="empty page at start=0 of 5 results; try again later"):
        api_source().fetch(FetchState(cursor=OLD_CURSOR))


@responses.activate
def test_api_a_whole_walk_moves_the_cursor(shared_fixture: Fixture, fake_clock: Any) -> None:
    page0 = shared_fixture(
        "arxiv/api/arxiv_api_2026_search_all-testing_start0_max10.xml"
    ).read_bytes()
    responses.get(API, body=page0)
    result = api_source(max_results=10, page_size=10).fetch(FetchState(cursor=OLD_CURSOR))
    assert result.warnings == []
    assert result.state.cursor == {"newest": "2025-03-07T12:39:59+00:00"}
