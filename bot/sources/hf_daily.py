"""Hugging Face Daily Papers: the `/api/daily_papers` JSON, current and 2024 schemas."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from ..errors import SourceError
from ..models import Entry, FetchState
from ..text import squash
from ._authors import unique
from ._base import FetchResult, Source, register
from ._http import FetchError, describe_status, get, shown
from ._ids import arxiv_id
from ._time import parse_time

API_URL = "https://huggingface.co/api/daily_papers"
PAPER_PAGE = "https://huggingface.co/papers/{}"


def _count(value: Any) -> int | None:
    """A count the API sent (a JSON number), else None: a missing count is not a count of 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return int(value)
    except (OverflowError, ValueError):  # inf, nan
        return None


def parse_daily_papers(data: Any, source: str = "hf-daily") -> list[Entry]:
    """Entries from a decoded `/api/daily_papers` body (see `read_daily_papers`), without warnings."""
    return read_daily_papers(data, source)[0]


def read_daily_papers(data: Any, source: str = "hf-daily") -> tuple[list[Entry], list[str]]:
    """Entries and warnings from a decoded `/api/daily_papers` body (a JSON array of {"paper": {...}, ...}).

    A malformed item (no paper id, a field of the wrong type) is skipped with a warning that
    names it; the other items are kept. A body that is not an array is a ValueError.
    """
    if isinstance(data, dict) and "error" in data:
        raise ValueError(f"the API answered with an error: {data['error']}")
    if not isinstance(data, list):
        # ValueError, not TypeError: bad input from the API, which callers report as a source error
        raise ValueError("expected a JSON array of daily papers")  # noqa: TRY004
    entries: dict[str, Entry] = {}
    warnings: list[str] = []
    for n, item in enumerate(data, 1):
        try:
            entry = _paper_entry(item, source)
        except (_Malformed, TypeError, AttributeError, ValueError) as e:
            warnings.append(
                f"skipped item {n} of the daily papers ({_label(item)}): {e}; the API sent a malformed item"
            )
            continue
        entries.setdefault(entry.id, entry)
    return list(entries.values()), warnings


class _Malformed(ValueError):
    """One daily-papers item that cannot be read."""


def _label(item: Any) -> str:
    """How a warning names an item: its paper id, else its title, else its first characters."""
    paper = item.get("paper") if isinstance(item, dict) else None
    paper = paper if isinstance(paper, dict) else {}
    if paper.get("id") not in (None, ""):
        return f"paper id {str(paper['id'])[:40]!r}"
    if isinstance(paper.get("title"), str):
        return f"titled {paper['title'][:60]!r}"
    return json.dumps(item, ensure_ascii=False)[:60]


def _kind(value: Any) -> str:
    """A JSON value's type in JSON's words."""
    names = {bool: "a boolean", dict: "an object", list: "an array", str: "a string"}
    return names.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _field(
    obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "paper"
) -> Any:
    """`obj[key]` when it is absent, null or of `kind`; else `_Malformed` naming the field."""
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        raise _Malformed(f"{where}.{key} is {_kind(value)}")
    return value


def _paper_entry(item: Any, source: str) -> Entry:
    """The entry of one daily-papers item; `_Malformed` says what is wrong with it."""
    if not isinstance(item, dict):
        raise _Malformed(f"the item is {_kind(item)}, not an object")
    paper = _field(item, "paper", dict, "item")
    if not paper or _field(paper, "id", (str, int)) in (None, ""):
        raise _Malformed("it has no paper.id")
    found = arxiv_id(str(paper["id"]))
    if found is None:
        raise _Malformed(f"paper.id {str(paper['id'])[:40]!r} is not an arXiv id")
    pid = found[0]
    # `paper.title` is hard-wrapped in the 2024 schema; a title may be "0", so test for None.
    title = _field(paper, "title", (str, int, float))
    if title is None:
        title = _field(item, "title", (str, int, float), "item") or ""
    # Hidden authors only hide their HF profile; they are still the paper's authors.
    authors = unique(
        [
            squash(a["name"])
            for a in _field(paper, "authors", list) or []
            if isinstance(a, dict) and isinstance(a.get("name"), str)
        ]
    )
    extra: dict[str, Any] = {"hf_url": PAPER_PAGE.format(pid)}
    # Only counts the API sent: a missing one must not overwrite the stored count with 0, and a
    # count that fell to 0 must still reach the store (the latest fetch settles counts).
    for name, value in (("upvotes", paper.get("upvotes")), ("comments", item.get("numComments"))):
        if (count := _count(value)) is not None:
            extra[name] = count
    for key, name in (
        ("ai_keywords", "ai_keywords"),
        ("githubRepo", "github_repo"),
        ("githubStars", "github_stars"),
        ("ai_summary", "ai_summary"),
        ("projectPage", "project_page"),
    ):
        if paper.get(key) not in (None, "", []):
            extra[name] = paper[key]
    org = paper.get("organization") or item.get("organization")
    if isinstance(org, dict) and org.get("fullname"):
        extra["organization"] = org["fullname"]
    keywords = _field(paper, "ai_keywords", list) or ()
    return Entry(
        id=f"arxiv:{pid}",
        title=squash(str(title)),
        summary=squash(_field(paper, "summary", str) or _field(item, "summary", str, "item") or ""),
        url=f"https://arxiv.org/abs/{pid}",
        authors=authors,
        # The day it was featured; the 2024 schema has only the top-level submission time.
        published=(
            parse_time(paper.get("submittedOnDailyAt"))
            or parse_time(item.get("publishedAt"))
            or parse_time(paper.get("publishedAt"))
        ),
        source=source,
        tags=unique([squash(str(k)) for k in keywords if isinstance(k, str | int | float)]),
        extra=extra,
    )


@register("hf-daily")
class HfDaily(Source):
    """The Hugging Face Daily Papers API, one request per featured day."""

    options: ClassVar[dict[str, Any]] = {
        "url": API_URL,
        "limit": 100,
        "days": 3,
        "timeout": 30,
        "max_bytes": 20_000_000,
    }

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
        warnings: list[str] = []
        day = first
        while day <= today:
            found, problems = self._day(day)
            entries.extend(found)
            warnings.extend(f"{day}: {p}" for p in problems)
            day += timedelta(days=1)
        cursor = {**state.cursor, "last_day": today.isoformat()}
        return FetchResult(
            entries, FetchState(state.etag, state.last_modified, cursor), warnings=warnings
        )

    def _day(self, day: date) -> tuple[list[Entry], list[str]]:
        url = str(self.settings["url"])
        params = {"date": day.isoformat(), "limit": int(self.settings["limit"])}
        try:
            got = get(
                self.http,
                url,
                params=params,
                headers={"Accept": "application/json"},
                timeout=float(self.settings["timeout"]),
                max_bytes=int(self.settings["max_bytes"]),
            )
        except FetchError as e:
            raise SourceError(self.name, f"{shown(url)}: {e}; try again later") from e
        if got.status != 200:
            raise SourceError(
                self.name, f"{shown(url)} (date={day}): {describe_status(got.status)}"
            )
        try:
            found, warnings = read_daily_papers(json.loads(got.content), self.name)
        except ValueError as e:  # JSONDecodeError is a ValueError
            raise SourceError(self.name, f"{shown(url)} (date={day}): {e}; check the url") from e
        # When these counts were read: the store lets the latest fetch settle them (`merge_entry`).
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        return [replace(e, extra={**e.extra, "counted_at": stamp}) for e in found], warnings
