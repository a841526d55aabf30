"""Hugging Face Daily Papers: the `/api/daily_papers` JSON, current and 2024 schemas."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from ..errors import SourceError
from ..models import Entry
from ..text import squash
from . import FetchResult, FetchState, Source, register
from ._authors import unique
from ._http import FetchError, describe_status, get, shown
from ._ids import arxiv_id

API_URL = "https://huggingface.co/api/daily_papers"
PAPER_PAGE = "https://huggingface.co/papers/{}"


def _when(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text)  # 3.11+ reads a trailing Z
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def parse_daily_papers(data: Any, source: str = "hf-daily") -> list[Entry]:
    """Entries from a decoded `/api/daily_papers` body (a JSON array of {"paper": {...}, ...})."""
    if isinstance(data, dict) and "error" in data:
        raise ValueError(f"the API answered with an error: {data['error']}")
    if not isinstance(data, list):
        # ValueError, not TypeError: bad input from the API, which callers report as a source error
        raise ValueError("expected a JSON array of daily papers")  # noqa: TRY004
    entries: dict[str, Entry] = {}
    for item in data:
        paper = item.get("paper") if isinstance(item, dict) else None
        if not isinstance(paper, dict) or not paper.get("id"):
            continue
        found = arxiv_id(str(paper["id"]))
        if found is None:
            continue
        pid = found[0]
        # `paper.title` is hard-wrapped in the 2024 schema; a title may be "0", so test for None.
        title = paper.get("title")
        if title is None:
            title = item.get("title", "")
        # Hidden authors only hide their HF profile; they are still the paper's authors.
        authors = unique([squash(a.get("name")) for a in paper.get("authors") or [] if isinstance(a, dict)])
        extra: dict[str, Any] = {"hf_url": PAPER_PAGE.format(pid), "upvotes": _int(paper.get("upvotes"))}
        for key, name in (("ai_keywords", "ai_keywords"), ("githubRepo", "github_repo"),
                          ("githubStars", "github_stars"), ("ai_summary", "ai_summary"),
                          ("projectPage", "project_page")):
            if paper.get(key) not in (None, "", []):
                extra[name] = paper[key]
        if item.get("numComments"):
            extra["comments"] = _int(item["numComments"])
        org = paper.get("organization") or item.get("organization")
        if isinstance(org, dict) and org.get("fullname"):
            extra["organization"] = org["fullname"]
        entries.setdefault(f"arxiv:{pid}", Entry(
            id=f"arxiv:{pid}",
            title=squash(str(title)),
            summary=squash(paper.get("summary") or item.get("summary") or ""),
            url=f"https://arxiv.org/abs/{pid}",
            authors=authors,
            # The day it was featured; the 2024 schema has only the top-level submission time.
            published=(_when(paper.get("submittedOnDailyAt")) or _when(item.get("publishedAt"))
                       or _when(paper.get("publishedAt"))),
            source=source,
            tags=unique([squash(str(k)) for k in paper.get("ai_keywords") or ()]),
            extra=extra,
        ))
    return list(entries.values())


@register("hf-daily")
class HfDaily(Source):
    """The Hugging Face Daily Papers API, one request per featured day."""

    options: ClassVar[dict[str, Any]] = {"url": API_URL, "limit": 100, "days": 3, "timeout": 30, "max_bytes": 20_000_000}

    def fetch(self, state: FetchState) -> FetchResult:
        """Fetch each day from the last one fetched (again: late papers, new upvotes) to today."""
        today = datetime.now(UTC).date()
        days = max(int(self.settings["days"]), 1)
        first = today - timedelta(days=days - 1)
        last = state.cursor.get("last_day")
        if isinstance(last, str):
            try:
                first = max(first, date.fromisoformat(last))
            except ValueError:
                pass
        entries: list[Entry] = []
        day = first
        while day <= today:
            entries.extend(self._day(day))
            day += timedelta(days=1)
        return FetchResult(entries, FetchState(state.etag, state.last_modified, {**state.cursor, "last_day": today.isoformat()}))

    def _day(self, day: date) -> list[Entry]:
        url = str(self.settings["url"])
        params = {"date": day.isoformat(), "limit": int(self.settings["limit"])}
        try:
            got = get(self.http, url, params=params, headers={"Accept": "application/json"},
                      timeout=float(self.settings["timeout"]), max_bytes=int(self.settings["max_bytes"]))
        except FetchError as e:
            raise SourceError(self.name, f"{shown(url)}: {e}; try again later") from e
        if got.status != 200:
            raise SourceError(self.name, f"{shown(url)} (date={day}): {describe_status(got.status)}")
        try:
            return parse_daily_papers(json.loads(got.content), self.name)
        except ValueError as e:  # JSONDecodeError is a ValueError
            raise SourceError(self.name, f"{shown(url)} (date={day}): {e}; check the url") from e
