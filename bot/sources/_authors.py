"""Author lists as feeds write them: `jo@x.org (Jo Doe)`, `Last, F.` names, comma-joined creators."""

from __future__ import annotations

import re

from ..text import plain_text, squash

_INITIALS = re.compile(r"^(?:[A-Z][a-z]?\.[\s\-]*)+$")
_ET_AL = re.compile(r"\s*,?\s*(?:et al\.?.*|\(\d+ additional authors not shown\))$", re.IGNORECASE)
EMAIL_NAME = re.compile(r"^\s*\S+@\S+\s*\((?P<name>[^)]+)\)\s*$")


def author_name(text: str | None) -> str:
    """One author's display name: `jo@x.org (Jo Doe)` becomes `Jo Doe`; markup dropped."""
    name = plain_text(text)
    m = EMAIL_NAME.match(name)
    return squash(m.group("name")) if m else name


def split_authors(text: str) -> list[str]:
    """Split a comma-joined author list (arXiv's dc:creator), keeping `Last, F.` names whole.

    bioRxiv writes `LAPALU, N., SIMON, A.`: a part made only of initials belongs to the name
    before it, so splitting on commas alone would break every name.
    """
    text = _ET_AL.sub("", squash(text))
    parts = [p.strip() for p in re.split(r",|\band\b(?=\s)", text) if p.strip()]
    names: list[str] = []
    for p in parts:
        if names and _INITIALS.match(p):
            names[-1] = f"{names[-1]}, {p}"
        else:
            names.append(p)
    return names


def unique(names: list[str]) -> tuple[str, ...]:
    """Names in their first order, each once, blanks dropped."""
    return tuple(dict.fromkeys(n for n in names if n))
