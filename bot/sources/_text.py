"""Text clean-up shared by the parsers: whitespace, HTML to plain text."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SPACE = re.compile(r"\s+")


def squash(text: str | None) -> str:
    """Collapse runs of white space (hard-wrapped titles and abstracts) into single spaces."""
    return _SPACE.sub(" ", text or "").strip()


class _TextOnly(HTMLParser):
    _SKIP = {"script", "style", "head", "title"}
    _BLOCK = {"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"}

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
    if "<" not in markup and "&" not in markup:
        return squash(markup)
    parser = _TextOnly()
    parser.feed(markup)
    parser.close()
    return squash("".join(parser.parts))
