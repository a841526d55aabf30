"""Interests as people type them — the web form, `/papers` in Slack, App Home's Edit modal: the
limits they share and how a typed phrase list is cleaned."""

from __future__ import annotations

import re

MAX_PHRASES = 20  # keywords, excludes, authors: at most this many phrases
MAX_PHRASE = 80  # characters in one phrase
MAX_DESCRIPTION = 1000  # characters in a description
MAX_NAME = 100  # characters in a subscriber's name (a subscription file's `name`, the web form's)


def phrases(text: str) -> tuple[str, ...]:
    """Phrases separated by commas or newlines, spaces collapsed, each once (case aside)."""
    seen: dict[str, None] = {}
    for part in re.split(r"[,\n]", text):
        p = " ".join(part.split())
        if p and p.lower() not in (s.lower() for s in seen):
            seen[p] = None
    return tuple(seen)
