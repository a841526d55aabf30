"""RSS/Atom feeds and arXiv (listing feeds and API), parsed by feedparser."""

from __future__ import annotations

import re
from calendar import timegm
from datetime import UTC, datetime
from typing import Any

import feedparser

from ..errors import SourceError
from ..models import Entry
from . import FetchResult, FetchState, Source, register
from ._ids import arxiv_id, canonical_id
from ._text import html_to_text, squash

_ANNOUNCE = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*(?P<type>[\w-]+)\s*Abstract:\s*", re.I)
_OLD_RSS_TITLE = re.compile(r"\s*\(arXiv:(?P<id>\S+?)\s*\[[^\]]*\][^)]*\)\s*$")


def _time(parsed: Any) -> datetime | None:
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(timegm(parsed), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _authors(e: Any) -> tuple[str, ...]:
    names = [squash(a.get("name")) for a in e.get("authors") or [] if a.get("name")]
    if len(names) == 1 and e.get("arxiv_announce_type") is not None:
        # arXiv's listing feeds put every author in one comma-joined dc:creator.
        names = [squash(n) for n in names[0].split(",") if n.strip()]
    return tuple(html_to_text(n) for n in names if n)


def parse_feed(content: bytes, url: str = "", source: str = "") -> tuple[list[Entry], list[str]]:
    """Entries and warnings from the bytes of an RSS/Atom feed; relative links resolve against `url`."""
    headers = {"content-type": "application/xml"}
    if url:
        headers["content-location"] = url
    parsed = feedparser.parse(content, response_headers=headers)
    warnings: list[str] = []
    if parsed.get("bozo"):
        problem = parsed.get("bozo_exception")
        if not parsed.entries:
            raise ValueError(f"not a readable feed ({problem})")
        warnings.append(f"feed is not well-formed ({problem}); used the {len(parsed.entries)} entries it has")
    feed_title = squash(parsed.feed.get("title", "")) if parsed.get("feed") else ""
    entries: dict[str, Entry] = {}
    for e in parsed.entries:
        link = (e.get("link") or "").strip()
        if link.lower().startswith(("javascript:", "data:", "vbscript:")):
            link = ""
        guid = (e.get("id") or "").strip()
        title = html_to_text(e.get("title", ""))
        summary_html = e.get("summary", "")
        extra: dict[str, Any] = {}
        announce = e.get("arxiv_announce_type")
        summary = html_to_text(summary_html)
        m = _ANNOUNCE.match(summary)
        if m:
            announce = announce or m.group("type")
            summary = summary[m.end():]
        t = _OLD_RSS_TITLE.search(title)
        if t:
            title = title[: t.start()]
            guid = guid or t.group("id")
        if announce:
            extra["announce_type"] = announce
        eid = canonical_id(guid, link)
        if not eid:
            warnings.append(f"skipped an entry with neither id nor link: {title[:60]!r}")
            continue
        found = arxiv_id(guid) or arxiv_id(link)
        if found and found[1]:
            extra["version"] = found[1]
        if found:
            link = f"https://arxiv.org/abs/{found[0]}"
        for l in e.get("links") or []:
            if l.get("title") == "pdf":
                extra["pdf_url"] = l.get("href")
        if e.get("arxiv_doi"):
            extra["doi"] = e["arxiv_doi"]
        entries[eid] = Entry(
            id=eid,
            title=title,
            summary=summary,
            url=link,
            authors=_authors(e),
            published=_time(e.get("published_parsed")) or _time(e.get("updated_parsed")),
            source=source or feed_title or url,
            tags=tuple(t["term"] for t in e.get("tags") or [] if t.get("term")),
            extra=extra,
        )
    return list(entries.values()), warnings


@register("rss")
class Rss(Source):
    """Any RSS 0.9x/1.0/2.0 or Atom feed, fetched with conditional GET."""

    options = {"url": None, "timeout": 30, "max_bytes": 10_000_000}

    def fetch(self, state: FetchState) -> FetchResult:
        url = self.settings["url"]
        headers = {}
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        try:
            resp = self.http.get(url, headers=headers, timeout=self.settings["timeout"])
            if resp.status_code == 304:
                return FetchResult([], state, not_modified=True)
            resp.raise_for_status()
            entries, warnings = parse_feed(resp.content, resp.url or url, self.name)
        except (OSError, ValueError) as e:
            raise SourceError(self.name, f"{e}; check the url {url!r} or try again later") from e
        new_state = FetchState(resp.headers.get("ETag", ""), resp.headers.get("Last-Modified", ""), state.cursor)
        return FetchResult(entries, new_state, warnings=warnings)


@register("arxiv")
class Arxiv(Rss):
    """arXiv's listing feed for some categories (rss.arxiv.org/rss/<cats>)."""

    options = {"url": "https://rss.arxiv.org/rss/cs.LG", "timeout": 30, "max_bytes": 10_000_000}
