"""RSS 0.9x/1.0/2.0 and Atom feeds (arXiv's listing feeds included), parsed by feedparser."""

from __future__ import annotations

import re
from calendar import timegm
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import feedparser

from ..errors import BotError, SourceError
from ..models import Entry, FetchState
from ..text import plain_text, squash
from ._authors import EMAIL_NAME, author_name, split_authors, unique
from ._base import FetchResult, Source, register
from ._caps import cap_feed
from ._http import FetchError, describe_status, get, shown
from ._ids import arxiv_id, bounded_id, canonical_id, normalize_url
from ._time import parse_time

# arXiv listing descriptions start "arXiv:2401.12345v2 Announce Type: replace \nAbstract: ".
_ANNOUNCE = re.compile(
    r"^\s*arXiv:\S+\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?", re.IGNORECASE
)
# Old (pre-2024) arXiv RDF titles end "(arXiv:1805.08875v1 [hep-ex] CROSS LISTED)".
_OLD_ARXIV_TITLE = re.compile(
    r"\s*\(arXiv:(?P<id>[^\s()\[\]]+?)\s*\[(?P<cat>[^\]]*)\]\s*(?P<kind>UPDATED|CROSS LISTED)?\)\s*$",
    re.IGNORECASE,
)
_OLD_KIND = {"": "new", "UPDATED": "replace", "CROSS LISTED": "cross"}
_ARXIV_ERROR = re.compile(r"^https?://arxiv\.org/api/errors", re.IGNORECASE)
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:\-]+)", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*:", re.IGNORECASE)
# Bozo reasons that still leave a sound document (a wrong charset label, an odd content type).
_HARMLESS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


class ArxivApiError(BotError, ValueError):
    """The arXiv API answered with its one-entry "Error" feed.

    Also a ValueError, as every "this is not a feed to read" answer of `read_feed` is.
    """


@dataclass(slots=True)
class ParsedFeed:
    """A feed's title and links, its entries and what was odd about it."""

    title: str
    link: str
    entries: list[Entry]
    warnings: list[str] = field(default_factory=list)
    version: str = ""
    total_results: int | None = None  # the arXiv API's opensearch:totalResults


def _time(parsed: Any) -> datetime | None:
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(timegm(parsed), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _web_scheme(url: str) -> bool:
    """Whether `url` is http(s); False too for what `urlsplit` refuses (`http://[abc/`)."""
    try:
        return urlsplit(url).scheme.lower() in ("http", "https")
    except ValueError:
        return False


def _safe_link(link: str, base: str) -> str:
    """An absolute http(s) link, resolved against `base` when relative; else "" (a link that
    is not a URL at all costs its item the link, not the feed its other items)."""
    link = link.strip()
    if not link:
        return ""
    if not _SCHEME.match(link) and base:
        try:
            link = urljoin(base, link)
        except ValueError:
            return ""
    return link if _web_scheme(link) else ""


def _base_for(parsed: Any, url: str) -> str:
    """What relative links resolve against: the fetch URL, else the feed's self or home link."""
    if _web_scheme(url):
        return url
    feed = parsed.get("feed") or {}
    for link in feed.get("links") or []:
        if link.get("rel") == "self" and _SCHEME.match(link.get("href", "")):
            return str(link["href"])
    home = feed.get("link", "")
    return home if _web_scheme(home) else ""


def read_feed(
    content: bytes,
    url: str = "",
    source: str = "",
    headers: Mapping[str, str] | None = None,
    key: str = "",
) -> ParsedFeed:
    """Parse the bytes of an RSS/Atom feed into entries, with warnings for what was wrong.

    `url` is where it came from (relative links resolve against it), `headers` the real HTTP
    response headers (charset, Content-Location), `key` what ids local to this feed are scoped by.
    Raises ValueError when there is no feed to read, `ArxivApiError` for the arXiv API's error feed.
    """
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    # A charset the server names is used; without one, feedparser would read text/xml as
    # US-ASCII and a missing type as ISO-8859-1 (RFC 3023), so the document decides instead.
    charset = _CHARSET.search(hdrs.get("content-type", ""))
    hdrs["content-type"] = "application/xml" + (f"; charset={charset.group(1)}" if charset else "")
    hdrs.pop("content-location", None)
    # Relative links are resolved here, against `url` (see `_base_for`), after feedparser has
    # applied any xml:base; URIs inside HTML need no resolving, since only its text is kept.
    # Bounded cost: what feedparser would spend minutes on is trimmed first (see _caps).
    content, trimmed = cap_feed(content)
    parsed = feedparser.parse(content, response_headers=hdrs, resolve_relative_uris=False)
    warnings: list[str] = [f"the feed has {what}; trimmed it" for what in trimmed]
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo"):
        if not parsed.entries and not (isinstance(problem, _HARMLESS) and parsed.get("version")):
            raise ValueError(f"not a readable RSS/Atom feed ({problem})")
        warnings.append(
            f"the feed is not well-formed ({problem}); used the {len(parsed.entries)} entries it has"
        )
    elif not parsed.get("version") and not parsed.entries:
        raise ValueError("not an RSS or Atom feed (no <rss>, <rdf:RDF> or <feed> element)")
    feed = parsed.get("feed") or {}
    ctx = _Context(
        base=_base_for(parsed, url),
        key=normalize_url(shown(key or url)),  # no token in an id, and a new token keeps the ids
        source=source or squash(feed.get("title", "")) or url,
        feed_date=_time(feed.get("updated_parsed")) or _time(feed.get("published_parsed")),
    )
    entries: dict[str, Entry] = {}
    for e in parsed.entries:
        entry = _entry(e, ctx, warnings)
        if entry is None:
            continue
        if entry.id in entries:
            warnings.append(f"two entries share the id {entry.id!r}; kept the first")
            continue
        entries[entry.id] = entry
    total = str(feed.get("opensearch_totalresults", "")).strip()
    return ParsedFeed(
        plain_text(feed.get("title"), feed.get("title_detail")),
        str(feed.get("link", "")),
        list(entries.values()),
        warnings,
        str(parsed.get("version", "")),
        int(total) if total.isdigit() else None,
    )


def parse_feed(
    content: bytes,
    url: str = "",
    source: str = "",
    headers: Mapping[str, str] | None = None,
    key: str = "",
) -> tuple[list[Entry], list[str]]:
    """Entries and warnings from the bytes of an RSS/Atom feed (see `read_feed`)."""
    feed = read_feed(content, url, source, headers, key)
    return feed.entries, feed.warnings


@dataclass(slots=True)
class _Context:
    base: str
    key: str
    source: str
    feed_date: datetime | None


def _entry(e: Any, ctx: _Context, warnings: list[str]) -> Entry | None:
    guid = squash(e.get("id"))
    if _ARXIV_ERROR.match(guid):
        raise ArxivApiError(f"the arXiv API answered with an error: {squash(e.get('summary'))}")
    link = _safe_link(e.get("link") or "", ctx.base)
    title = plain_text(e.get("title"), e.get("title_detail"))
    summary_html = e.get("summary") or ""
    summary_detail = e.get("summary_detail")
    if not summary_html and e.get("content"):
        summary_html, summary_detail = e["content"][0].get("value", ""), e["content"][0]
    summary = plain_text(summary_html, summary_detail)
    extra: dict[str, Any] = {}
    tags = [squash(t.get("term")) for t in e.get("tags") or [] if t.get("term")]
    announce = e.get("arxiv_announce_type")
    m = _ANNOUNCE.match(summary)
    if m:
        announce = announce or m.group("type")
        summary = summary[m.end() :]
    old = _OLD_ARXIV_TITLE.search(title)
    if old:
        title = title[: old.start()]
        announce = announce or _OLD_KIND[squash(old.group("kind") or "").upper()]
        guid = guid or old.group("id")
        tags.append(old.group("cat"))
    paper = arxiv_id(guid) or arxiv_id(link) or (arxiv_id(old.group("id")) if old else None)
    if old and paper and not paper[1]:
        paper = arxiv_id(old.group("id")) or paper
    if paper:
        eid = f"arxiv:{paper[0]}"
        link = f"https://arxiv.org/abs/{paper[0]}"
        if paper[1]:
            extra["version"] = paper[1]
        if announce:
            extra["announce_type"] = str(announce).lower()
    else:
        found = _feed_id(guid, link, title or summary, ctx, warnings)
        if found is None:
            return None
        eid = found
    eid = bounded_id(eid)
    extra.update(_arxiv_extra(e))
    published = _time(e.get("published_parsed")) or _time(e.get("updated_parsed"))
    if published is None:
        # feedparser leaves some dates unread (an RFC 822 date without a zone): undated, the
        # entry would count as published when first seen, and an archive would flood a digest.
        published = parse_time(e.get("published")) or parse_time(e.get("updated"))
    if published is None and paper and announce:
        published = ctx.feed_date  # old arXiv RDF items carry no date; the channel does
    return Entry(
        id=eid,
        title=title,
        summary=summary,
        url=link,
        authors=_authors(e, bool(paper)),
        published=published,
        source=ctx.source,
        tags=unique(tags),
        extra=extra,
    )


def _feed_id(guid: str, link: str, text: str, ctx: _Context, warnings: list[str]) -> str | None:
    """The id of an item that is not an arXiv paper: its guid, else its link, else its text."""
    if guid:
        # A guid with a scheme (URL, tag:, urn:) is global; a bare one ("abc", "1234") only
        # means something inside its feed, so it is scoped by the feed's address.
        if _SCHEME.match(guid):
            return canonical_id(guid, "")
        return f"{ctx.key}#{guid}" if ctx.key else guid
    if link:
        return canonical_id("", link)
    if text:
        # Neither guid nor link: the title is the only identity the item has.
        warnings.append(
            f"an entry has neither guid nor link; it is known by its text {text[:60]!r}, "
            "so an edit to it will look like a new entry"
        )
        return f"{ctx.key}#title:{text[:200]}"
    warnings.append("skipped an empty entry (no id, link, title or summary)")
    return None


def _arxiv_extra(e: Any) -> dict[str, Any]:
    """What arXiv's feeds add to an item: the PDF link, DOI, comment, journal and primary category."""
    extra: dict[str, Any] = {}
    for lk in e.get("links") or []:
        if lk.get("title") == "pdf" and lk.get("href"):
            extra["pdf_url"] = lk["href"]
    for name, value in (
        ("doi", e.get("arxiv_doi")),
        ("comment", e.get("arxiv_comment")),
        ("journal_ref", e.get("arxiv_journal_ref")),
    ):
        if value:
            extra[name] = squash(value)
    primary = (e.get("arxiv_primary_category") or {}).get("term")
    if primary:
        extra["primary_category"] = primary
    return extra


def _authors(e: Any, is_paper: bool) -> tuple[str, ...]:
    names = [author_name(a.get("name")) for a in e.get("authors") or [] if a.get("name")]
    raw = e.get("author") or ""
    if len(names) <= 1 and raw and (not names or EMAIL_NAME.match(raw)):
        # feedparser splits "jo@x.org (Jo Große)" at the wrong place once it is not ASCII.
        names = [author_name(raw)]
    if len(names) == 1 and (is_paper or names[0].count(",") >= 2):
        # arXiv (and bioRxiv) listing feeds put every author in one comma-joined dc:creator.
        names = split_authors(names[0])
    return unique(names)


@register("rss")
class Rss(Source):
    """Any RSS 0.9x/1.0/2.0 or Atom feed, fetched with conditional GET."""

    options: ClassVar[dict[str, Any]] = {"url": None, "timeout": 30, "max_bytes": 10_000_000}

    def fetch(self, state: FetchState) -> FetchResult:
        """GET the feed (If-None-Match / If-Modified-Since from `state`); a 304 changes nothing."""
        return fetch_feed(self, str(self.settings["url"]), state)


def fetch_feed(
    source: Source, url: str, state: FetchState, min_interval: float = 0.0
) -> FetchResult:
    """Fetch and parse one feed for `source`, keeping ETag and Last-Modified for the next time."""
    headers = {
        "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"
    }
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    try:
        got = get(
            source.http,
            url,
            headers=headers,
            timeout=float(source.settings["timeout"]),
            max_bytes=int(source.settings["max_bytes"]),
            min_interval=min_interval,
        )
    except FetchError as e:
        raise SourceError(
            source.name, f"{shown(url)}: {e}; check the url or try again later"
        ) from e
    if got.status == 304:
        return FetchResult([], state, not_modified=True)
    if not 200 <= got.status < 300:
        raise SourceError(source.name, f"{shown(url)}: {describe_status(got.status)}")
    try:
        feed = read_feed(got.content, got.url, source.name, got.headers, key=url)
    except ValueError as e:
        raise SourceError(
            source.name, f"{shown(url)}: {e}; check that the url gives a feed, not a web page"
        ) from e
    if got.moved_to:
        feed.warnings.append(
            f"the feed moved permanently to {shown(got.moved_to)}; put that url in the config"
        )
    new_state = FetchState(
        got.headers.get("ETag", ""), got.headers.get("Last-Modified", ""), dict(state.cursor)
    )
    return FetchResult(feed.entries, new_state, warnings=feed.warnings)
