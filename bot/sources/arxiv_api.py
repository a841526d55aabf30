"""arXiv: the listing feeds (rss.arxiv.org) and the search API (export.arxiv.org/api/query)."""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import SourceError
from ..models import Entry, FetchState
from ._base import FetchResult, Source, register
from ._http import FetchError, describe_status, get, shown
from ._time import parse_time
from .feeds import ArxivApiError, ParsedFeed, fetch_feed, read_feed

API_URL = "https://export.arxiv.org/api/query"
LISTING_URL = "https://rss.arxiv.org/rss/{}"
DELAY = 3.0  # seconds between calls, as arXiv's API terms ask


def listing_url(categories: Any) -> str:
    """The listing feed for one or more categories: "cs.LG", "cs.LG+cs.AI" or ["cs.LG", "cs.AI"]."""
    cats = categories if isinstance(categories, str) else "+".join(str(c) for c in categories)
    cats = "+".join(c.strip() for c in cats.replace(",", "+").split("+") if c.strip())
    return LISTING_URL.format(cats)


@register("arxiv")
class Arxiv(Source):
    """arXiv: a listing feed (`categories` or `url`) or, with `query`, the search API."""

    list_options = frozenset({"categories"})
    options: ClassVar[dict[str, Any]] = {
        "categories": "cs.LG",  # the listing feed rss.arxiv.org/rss/<categories>
        "url": "",  # or a listing feed url of your own
        "query": "",  # an API search_query, e.g. "cat:cs.LG AND abs:quantization"; uses the API
        "max_results": 200,  # API: at most this many entries per fetch
        "page_size": 100,  # API: entries per request
        "sort_by": "submittedDate",  # API: submittedDate | lastUpdatedDate | relevance
        "delay": DELAY,  # seconds between two calls to arXiv (at least 3)
        "api_url": API_URL,
        "timeout": 30,
        "max_bytes": 20_000_000,
    }

    def fetch(self, state: FetchState) -> FetchResult:
        """The listing feed with conditional GET, or the API page by page."""
        delay = max(float(self.settings["delay"]), DELAY)
        if not self.settings["query"]:
            url = str(self.settings["url"]) or listing_url(self.settings["categories"])
            # An empty listing (weekends, holidays) is a normal answer, not an error.
            return fetch_feed(self, url, state, min_interval=delay)
        return self._search(state, delay)

    def _search(self, state: FetchState, delay: float) -> FetchResult:
        query = str(self.settings["query"])
        url = str(self.settings["api_url"])
        sort_by = str(self.settings["sort_by"])
        wanted = int(self.settings["max_results"])
        size = max(1, min(int(self.settings["page_size"]), 2000))
        newest_before = parse_time(state.cursor.get("newest"))  # an old naive one is UTC
        found: dict[str, Entry] = {}
        warnings: list[str] = []
        # The cursor moves only after a whole walk: one that reached what the last fetch had, the
        # end of the results or `max_results`. A walk cut short (a page failed, or came back empty
        # although the API counts more results) keeps the old cursor, so the next fetch walks
        # down to it again and gets the papers this one missed.
        complete = True
        start = 0
        while start < wanted:
            params: dict[str, Any] = {
                "search_query": query,
                "start": start,
                "max_results": min(size, wanted - start),
                "sortBy": sort_by,
                "sortOrder": "descending",
            }
            try:
                page = self._page(url, params, delay)
                if not page.entries and page.total_results and start < page.total_results:
                    # A known flake of the API: an empty page in the middle of the results.
                    raise SourceError(
                        self.name,
                        f"{shown(url)}: an empty page at start={start} of "
                        f"{page.total_results} results; try again later",
                    )
            except SourceError as problem:
                if not found:
                    raise
                warnings.append(
                    f"stopped after {len(found)} entries: {problem}; "
                    "the next fetch asks again for the rest"
                )
                complete = False
                break
            warnings.extend(page.warnings)
            fresh = [e for e in page.entries if e.id not in found]
            for e in fresh:
                found[e.id] = e
            start += int(params["max_results"])
            if not page.entries or (page.total_results is not None and start >= page.total_results):
                break
            if (
                sort_by == "submittedDate"
                and newest_before
                and any(e.published and e.published <= newest_before for e in page.entries)
            ):
                break  # reached what the last fetch already had
        dates = [e.published for e in found.values() if e.published]
        cursor = dict(state.cursor)
        if dates and complete:
            cursor["newest"] = max(dates + ([newest_before] if newest_before else [])).isoformat()
        return FetchResult(
            list(found.values()),
            FetchState(state.etag, state.last_modified, cursor),
            warnings=warnings,
        )

    def _page(self, url: str, params: dict[str, Any], delay: float) -> ParsedFeed:
        try:
            got = get(
                self.http,
                url,
                params=params,
                timeout=float(self.settings["timeout"]),
                max_bytes=int(self.settings["max_bytes"]),
                min_interval=delay,
            )
        except FetchError as e:
            raise SourceError(self.name, f"{shown(url)}: {e}; try again later") from e
        try:
            # arXiv sends its "Error" feed with HTTP 400: read the body before the status.
            page = read_feed(got.content, got.url, self.name, got.headers)
        except ArxivApiError as e:
            raise SourceError(self.name, f"{e}; check the query {params['search_query']!r}") from e
        except ValueError as e:
            if 200 <= got.status < 300:
                raise SourceError(self.name, f"{shown(url)}: {e}; try again later") from e
            raise SourceError(self.name, f"{shown(url)}: {describe_status(got.status)}") from e
        if not 200 <= got.status < 300:
            raise SourceError(self.name, f"{shown(url)}: {describe_status(got.status)}")
        return page
