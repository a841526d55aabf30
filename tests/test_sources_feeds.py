"""RSS/Atom parsing over the real tricky feeds in ../shared/fixtures/feeds and our own small ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.errors import SourceError
from bot.sources.feeds import parse_feed, read_feed
from bot.sources.files import read_entries

DATA = Path(__file__).resolve().parent / "data"

Fixture = Callable[[str], Path]
FEED_URL = "http://example.test/feeds/feed.xml"


def feed_of(shared_fixture: Fixture, name: str, url: str = FEED_URL):  # type: ignore[no-untyped-def]
    return read_feed(shared_fixture(f"feeds/{name}").read_bytes(), url, "test")


def test_script_in_a_description_becomes_inert_plain_text(shared_fixture: Fixture) -> None:
    (e,) = feed_of(
        shared_fixture, "feedparser__wellformed_sanitize_item_description_crazy.xml"
    ).entries
    assert e.summary.startswith("Crazy HTML -- Can Your Regex Parse This?")
    for bad in ("<", ">", "onload", "onmouseover", 'alert("Executed")'):
        assert bad not in e.summary


def test_an_html_title_becomes_plain_text(shared_fixture: Fixture) -> None:
    (e,) = feed_of(shared_fixture, "feedparser__wellformed_sanitize_entry_title_crazy.xml").entries
    assert e.title.startswith("Crazy HTML -- Can Your Regex Parse This?")
    assert "<" not in e.title and ">" not in e.title and 'alert("Executed")' not in e.title


def test_a_script_in_a_cdata_summary_is_dropped(shared_fixture: Fixture) -> None:
    (e,) = feed_of(
        shared_fixture, "feedparser__wellformed_sanitize_entry_summary_script_cdata.xml"
    ).entries
    assert e.summary == "safe description"


def test_own_hostile_feed_titles_stay_text_and_javascript_links_are_dropped() -> None:
    entries, _ = parse_feed(
        (DATA / "hostile.xml").read_bytes(), "https://hostile.example/feed.xml", "hostile"
    )
    first, second = entries
    assert first.title == "Safe title"
    assert first.url == ""  # javascript: is never a link
    assert (
        first.id == "https://hostile.example/feed.xml#post-1"
    )  # a bare guid is scoped by its feed
    assert first.summary == "Hello world a < b"
    assert second.title == "Generics: Using <T> in Java"  # text that only looks like a tag stays
    assert second.url == second.id == "https://hostile.example/posts/generics"


def test_nested_relative_xml_base(shared_fixture: Fixture) -> None:
    feed = shared_fixture("feeds/feedparser__wellformed_base_relative_xml_base.xml")
    (e,) = read_feed(feed.read_bytes(), FEED_URL).entries
    assert e.title == "Example test"


def test_an_item_link_resolves_against_the_fetch_url(shared_fixture: Fixture) -> None:
    (e,) = feed_of(
        shared_fixture, "feedparser__wellformed_base_http_item_link_base_docuri.xml"
    ).entries
    assert e.url == e.id == "http://example.test/relative/uri"


def test_an_unsafe_xml_base_is_ignored(shared_fixture: Fixture) -> None:
    (e,) = feed_of(shared_fixture, "feedparser__wellformed_base_unsafe_base.xml").entries
    assert "javascript" not in e.id + e.url + e.title


def test_atom_relative_link_resolves_against_the_self_link_when_read_from_a_file(
    shared_fixture: Fixture,
) -> None:
    entries, _ = read_entries(shared_fixture("feeds/feed-rs__atom_relative.xml"))
    assert entries[0].url == "https://example.com/blog/2003/12/13/atom03"
    assert entries[0].id == "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"


def test_a_guid_that_is_not_a_url_is_an_id_within_its_feed(shared_fixture: Fixture) -> None:
    (e,) = feed_of(
        shared_fixture, "feedparser__wellformed_rss_item_guid_not_permalink_not_url.xml"
    ).entries
    assert e.id == f"{FEED_URL}#abc"
    assert e.url == ""


def test_a_truncated_feed_still_yields_its_entry(shared_fixture: Fixture) -> None:
    feed = feed_of(shared_fixture, "feedparser__illformed_rss_item_link_corrupted_ampersands.xml")
    (e,) = feed.entries
    assert e.url == "http://link/get?a=1&b=2"
    assert any("not well-formed" in w for w in feed.warnings)


def test_an_empty_entry_in_a_broken_feed_is_skipped_with_a_warning(shared_fixture: Fixture) -> None:
    feed = feed_of(shared_fixture, "feedparser__illformed_rss_incomplete_cdata.xml")
    assert feed.entries == []
    assert any("empty entry" in w for w in feed.warnings)


def test_a_feed_cut_by_a_server_error_is_an_error_not_an_empty_feed(
    shared_fixture: Fixture,
) -> None:
    with pytest.raises(ValueError, match="not a readable RSS/Atom feed"):
        feed_of(shared_fixture, "feed-rs__rss_2.0_invalid_1.xml")


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("feedparser__encoding_euc-kr.xml", "\ub144"),
        ("feed-rs__rss_2.0_encoding_1.xml", "RSS Feed do Site Inovação Tecnológica"),
    ],
)
def test_declared_encodings_decode(shared_fixture: Fixture, name: str, title: str) -> None:
    assert feed_of(shared_fixture, name).title == title


def test_utf16_with_bom_parses(shared_fixture: Fixture) -> None:
    feed = feed_of(shared_fixture, "feedparser__encoding_utf-16le-bom.xml")
    assert feed.version == "rss" and feed.warnings == []


def test_koi8r_without_a_declaration_is_detected(shared_fixture: Fixture) -> None:
    (e,) = feed_of(shared_fixture, "feedparser__illformed_chardet_koi8r.xml").entries
    assert e.title == "Как пережить новогоднюю ночь"


def test_a_greek_date_does_not_break_the_feed(shared_fixture: Fixture) -> None:
    feed = feed_of(shared_fixture, "feedparser__illformed_http_high_bit_date.xml")
    assert feed.version == "rss20" and feed.entries == []


def test_latin1_without_declaration_or_guid(shared_fixture: Fixture) -> None:
    feed = feed_of(shared_fixture, "rss-parser__uolNoticias.rss")
    assert len(feed.entries) == 15
    assert (
        feed.entries[0].title
        == "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno"
    )
    assert all(
        e.id == e.url and e.url.startswith("http") for e in feed.entries
    )  # the link, from CDATA
    assert all(
        e.published is None for e in feed.entries
    )  # the store gives them their first-seen time


@pytest.mark.parametrize(
    ("name", "title", "header"),
    [
        ("latin1_declared.xml", "Revolução nas telas: ação & reação", None),
        ("latin1_undeclared.xml", "Notícias: eleição é amanhã", None),
        ("utf16le_bom.xml", "Grüße aus Köln — 東京", None),
        ("latin1_undeclared.xml", "Notícias: eleição é amanhã", "text/xml; charset=ISO-8859-1"),
    ],
)
def test_own_encoding_samples(name: str, title: str, header: str | None) -> None:
    headers = {"Content-Type": header} if header else None
    feed = read_feed((DATA / name).read_bytes(), FEED_URL, headers=headers)
    assert [e.title for e in feed.entries] == [title]
    if header:
        assert feed.warnings == []


def test_rss_092_without_guid_or_date(shared_fixture: Fixture) -> None:
    entries = feed_of(shared_fixture, "rss-parser__heraldsun.rss").entries
    assert [e.id for e in entries] == [
        "http://www.oreilly.com/example/001.html",
        "http://www.oreilly.com/example/002.html",
    ]


def test_a_duplicate_guid_gives_one_entry(shared_fixture: Fixture) -> None:
    feed = feed_of(shared_fixture, "rss-parser__itunes-missing-image.rss")
    ids = [e.id for e in feed.entries]
    assert len(ids) == len(set(ids)) == 130
    assert ids.count("http://taverncast.com/shows/geekistry-2.mp3") == 1
    assert any("share the id" in w for w in feed.warnings)
    assert feed.entries[0].authors == ("Taverncast: www.taverncast.com", "Taverncast")


def test_an_atom_entry_with_only_an_id(shared_fixture: Fixture) -> None:
    (e,) = feed_of(shared_fixture, "rss-parser__missing-fields.atom").entries
    assert e.id == "tag:github.com,2008:Repository/11167738/v3.9.0"
    assert (e.title, e.url, e.published) == ("", "", None)


def test_an_item_without_guid_or_link_is_kept_by_its_title(shared_fixture: Fixture) -> None:
    feed = feed_of(shared_fixture, "feed-rs__rss_0.91_missing_id.xml")
    (e,) = feed.entries
    assert e.title.startswith("Oferta de Empleo Público")
    assert e.id == f"{FEED_URL}#title:{e.title}"
    assert "Descárguelo aquí" in e.summary and "<" not in e.summary
    assert any("neither guid nor link" in w for w in feed.warnings)


def test_rss_author_in_email_form_with_non_ascii(shared_fixture: Fixture) -> None:
    entries = feed_of(shared_fixture, "feed-rs__rss_2.0_relurl_1.xml").entries
    assert entries[0].authors == ("Jonas Große Sundrup",)


def test_atom_xml_base_on_content_only(shared_fixture: Fixture) -> None:
    (e,) = feed_of(shared_fixture, "feed-rs__atom_xml_base.xml").entries
    assert e.url == "https://numi.st/post/2022/travel-uke"


def test_biorxiv_authors_in_last_initials_form(shared_fixture: Fixture) -> None:
    (e,) = feed_of(shared_fixture, "feed-rs__rss_1.0_biorxiv.xml").entries
    assert e.authors[:4] == ("LAPALU, N.", "SIMON, A.", "Lu, A.", "Plaumann, P.-L.")
    assert e.authors[-1] == "O'Connell, R. J."
    assert e.title.startswith("Complete genome of the Medicago") and e.url.startswith(
        "http://biorxiv.org/"
    )
    assert e.published is not None and e.published.date().isoformat() == "2023-12-16"


def test_not_a_feed_is_an_error() -> None:
    with pytest.raises(ValueError, match="not"):
        parse_feed(b"<html><body><p>Hello</p></body></html>", FEED_URL)


def test_read_entries_names_the_file_and_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("just some text", encoding="utf-8")
    with pytest.raises(
        SourceError, match=r"notes\.txt.*give an RSS/Atom file or HF daily-papers JSON"
    ):
        read_entries(bad)
    with pytest.raises(SourceError, match="check the path"):
        read_entries(tmp_path / "missing.xml")


def test_hf_community_rss_mirror_with_iso_dates(shared_fixture: Fixture) -> None:
    entries = read_feed(
        shared_fixture("hf/hf_papers_community_rss_mirror_2026-10-03_first3items.xml").read_bytes(),
        FEED_URL,
    ).entries
    assert [e.id for e in entries] == ["arxiv:2609.22753", "arxiv:2610.01092", "arxiv:2609.36435"]
    assert (
        entries[0].published is not None
        and entries[0].published.isoformat() == "2026-09-26T00:00:00+00:00"
    )
    assert all(e.url.startswith("https://arxiv.org/abs/") for e in entries)


def test_a_pubdate_without_a_zone_is_read_as_utc() -> None:
    """feedparser leaves `Wed, 02 Oct 2002 13:00:00` unread; undated, an archive would flood a digest."""
    items = (
        ("a", "<pubDate>Wed, 02 Oct 2002 13:00:00</pubDate>"),
        ("b", "<pubDate>Wed, 02 Oct 2002 13:00:00 -0500</pubDate>"),  # feedparser's own
        ("c", "<pubDate>Fri, 31 Dec 9999 23:00:00 -0500</pubDate>"),  # past UTC: no date
        ("d", "<pubDate>sometime</pubDate>"),
        ("e", ""),
    )
    body = "".join(
        f"<item><title>{t}</title><link>https://blog.example/{t}</link>{d}</item>" for t, d in items
    )
    feed = read_feed(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>B</title>{body}</channel></rss>'.encode(),
        FEED_URL,
    )
    dates = {e.title: e.published and e.published.isoformat() for e in feed.entries}
    assert dates == {
        "a": "2002-10-02T13:00:00+00:00",
        "b": "2002-10-02T18:00:00+00:00",
        "c": None,
        "d": None,
        "e": None,
    }
