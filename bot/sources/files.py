"""The `file` source and `read_entries`: a local RSS/Atom file or HF daily-papers JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from ..errors import SourceError
from ..models import Entry, FetchState
from ._base import FetchResult, Source, clean_entries, register
from .feeds import parse_feed
from .hf_daily import read_daily_papers


def read_entries(path: str | Path, source: str = "") -> tuple[list[Entry], list[str]]:
    """Entries and warnings from a local file in any format a source reads."""
    p = Path(path)
    try:
        content = p.read_bytes()
    except OSError as e:
        raise SourceError(source or p.name, f"cannot read {p}: {e.strerror}; check the path") from e
    head = content.lstrip()[:1]
    try:
        if head in (b"[", b"{"):
            entries, warnings = read_daily_papers(json.loads(content), source or p.stem)
        else:
            entries, warnings = parse_feed(content, p.resolve().as_uri(), source or p.stem)
    except ValueError as e:
        raise SourceError(
            source or p.name, f"{p}: {e}; give an RSS/Atom file or HF daily-papers JSON"
        ) from e
    return clean_entries(entries), warnings


@register("file")
class File(Source):
    """A local RSS/Atom file or Hugging Face daily-papers JSON (examples, tests, offline use)."""

    options: ClassVar[dict[str, Any]] = {"path": None}

    def fetch(self, state: FetchState) -> FetchResult:
        """Read the whole file each time (no conditional GET for a local file); `state` is kept."""
        entries, warnings = read_entries(self.settings["path"], self.name)
        return FetchResult(entries, state, warnings=warnings)
