"""Hugging Face Daily Papers: the `/api/daily_papers` JSON, current and 2024 schemas."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..errors import SourceError
from ..models import Entry
from . import FetchResult, FetchState, Source, register
from ._text import squash

API_URL = "https://huggingface.co/api/daily_papers"


def _when(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_daily_papers(data: Any, source: str = "hf-daily") -> list[Entry]:
    """Entries from a decoded `/api/daily_papers` body (a JSON array of {"paper": {...}, ...})."""
    if not isinstance(data, list):
        raise ValueError("expected a JSON array of daily papers")
    entries: list[Entry] = []
    for item in data:
        paper = item.get("paper") if isinstance(item, dict) else None
        if not isinstance(paper, dict) or not paper.get("id"):
            continue
        pid = str(paper["id"]).strip()
        title = paper.get("title")
        if title is None:
            title = item.get("title", "")
        authors = tuple(
            squash(a.get("name"))
            for a in paper.get("authors") or []
            if isinstance(a, dict) and a.get("name") and not a.get("hidden")
        )
        extra: dict[str, Any] = {
            "hf_url": f"https://huggingface.co/papers/{pid}",
            "upvotes": int(paper.get("upvotes") or 0),
        }
        for key, name in (("ai_keywords", "ai_keywords"), ("githubRepo", "github_repo"),
                          ("ai_summary", "ai_summary"), ("projectPage", "project_page")):
            if paper.get(key):
                extra[name] = paper[key]
        if item.get("numComments"):
            extra["comments"] = int(item["numComments"])
        entries.append(
            Entry(
                id=f"arxiv:{pid}",
                title=squash(str(title)),
                summary=squash(paper.get("summary") or item.get("summary") or ""),
                url=f"https://arxiv.org/abs/{pid}",
                authors=authors,
                published=_when(paper.get("submittedOnDailyAt")) or _when(paper.get("publishedAt")),
                source=source,
                tags=tuple(str(k) for k in paper.get("ai_keywords") or ()),
                extra=extra,
            )
        )
    return entries


@register("hf-daily")
class HfDaily(Source):
    """The Hugging Face Daily Papers API."""

    options = {"url": API_URL, "limit": 100}

    def fetch(self, state: FetchState) -> FetchResult:
        params: dict[str, Any] = {"limit": self.settings["limit"]}
        try:
            resp = self.http.get(self.settings["url"], params=params, timeout=30)
            resp.raise_for_status()
            data = json.loads(resp.content)
            return FetchResult(parse_daily_papers(data, self.name), state)
        except (OSError, ValueError) as e:
            raise SourceError(self.name, f"{e}; check the url or try again later") from e
