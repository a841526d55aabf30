"""Text clean-up shared by the parsers: whitespace, HTML to plain text, author lists."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser
from typing import Any

# Markup worth stripping in a field a feed calls plain text: a real HTML tag or an entity.
# "Using <T> generics" or "$a<b$" is left alone.
_LOOKS_HTML = re.compile(
    r"</?(?:a|abbr|b|big|blockquote|br|cite|code|div|em|font|h[1-6]|i|img|li|ol|p|pre|q|s|"
    r"script|small|span|strike|strong|style|sub|sup|table|td|tr|tt|u|ul|iframe|object)(?:\s[^<>]*)?/?>"
    r"|&(?:#\d+|#x[0-9a-f]+|[a-z]+\d*);",
    re.IGNORECASE,
)
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def squash(text: str | None) -> str:
    """Collapse runs of white space (hard-wrapped titles and abstracts) into single spaces."""
    return " ".join(text.split()) if text else ""  # str.split: faster than a regex, same \s


class _TextOnly(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title", "noscript", "template"})
    _BLOCK = frozenset({"p", "br", "div", "li", "tr", "td", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str | None) -> str:
    """Plain text of an HTML fragment: tags dropped, scripts and styles removed, entities decoded."""
    if not markup:
        return ""
    if "<" not in markup:
        return squash(unescape(markup) if "&" in markup else markup)
    parser = _TextOnly()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    # A document cut inside a tag ("<scr") leaves the rest in the parser; it is never text.
    return squash(text)


def plain_text(value: str | None, detail: Any = None) -> str:
    """A feed field as plain text, by its declared type: HTML is stripped, text kept as text."""
    if not value:
        return ""
    kind = (detail or {}).get("type", "") if hasattr(detail, "get") else ""
    if kind in _HTML_TYPES or _LOOKS_HTML.search(value):
        return html_to_text(value)
    return squash(value)


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
