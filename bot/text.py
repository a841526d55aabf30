"""The one text cleaner: untrusted text made plain, safe and short.

Sources use `strip_controls`, `squash`, `html_to_text` and `plain_text` on what a feed or API
sends; the renderers use `single_line` and `shorten`; the terminal uses `printable` and `cut`.
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser
from typing import Any

# Characters untrusted text may not carry into the store, a mail, Slack or a terminal:
# NUL and the other C0/C1 controls (tab and newline are kept; a carriage return becomes a
# newline), the bidi embedding/override/isolate controls that reorder what a reader sees
# (U+202A-U+202E, U+2066-U+2069), the left-to-right and right-to-left marks, zero-width
# and invisible characters (U+200B-U+200D, U+2060-U+2064, U+FEFF), and lone surrogates,
# which no database can store as UTF-8.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u2069\ufeff\ud800-\udfff]+"
)
_C0 = re.compile(r"[\x00-\x1f\x7f]+")

# Markup worth stripping in a field a feed calls plain text: a real HTML tag or an entity.
# "Using <T> generics" or "$a<b$" is left alone.
_LOOKS_HTML = re.compile(
    r"</?(?:a|abbr|b|big|blockquote|br|cite|code|div|em|font|h[1-6]|i|img|li|ol|p|pre|q|s|"
    r"script|small|span|strike|strong|style|sub|sup|table|td|tr|tt|u|ul|iframe|object)(?:\s[^<>]*)?/?>"
    r"|&(?:#\d+|#x[0-9a-f]+|[a-z]+\d*);",
    re.IGNORECASE,
)
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def strip_controls(text: str) -> str:
    """`text` without the characters listed in `_UNSAFE` (a carriage return becomes a newline).

    Applied to every string a source brings in, before anything stores or shows it.
    """
    if not text:
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub("", text) if _UNSAFE.search(text) else text


def squash(text: str | None) -> str:
    """Collapse runs of white space (hard-wrapped titles and abstracts) into single spaces."""
    return " ".join(text.split()) if text else ""  # str.split: faster than a regex, same \s


class _TextOnly(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title", "noscript", "template"})
    _BLOCK = frozenset(
        {
            "p",
            "br",
            "div",
            "li",
            "tr",
            "td",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "pre",
        }
    )

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
    # A document cut inside a tag ("<scr") leaves the rest in the parser; it is never text.
    return squash("".join(parser.parts))


def plain_text(value: str | None, detail: Any = None) -> str:
    """A feed field as plain text, by its declared type: HTML is stripped, text kept as text."""
    if not value:
        return ""
    kind = (detail or {}).get("type", "") if hasattr(detail, "get") else ""
    if kind in _HTML_TYPES or _LOOKS_HTML.search(value):
        return html_to_text(value)
    return squash(value)


def single_line(text: str) -> str:
    """One line of plain text: runs of C0 controls (newlines too) and DEL become one space."""
    if not text:
        return ""
    if text.isprintable():  # the common case, without a regex
        return text.strip()
    return _C0.sub(" ", text).strip()


def printable(text: str) -> str:
    """Text fit for a terminal: every character that is not printable becomes a space.

    That is control characters (newlines and tabs too), format characters such as U+202E,
    and every space other than U+0020, so a title cannot move the cursor or reorder a line.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else " " for ch in text)


def cut(text: str, limit: int, ellipsis: str = "…") -> str:
    """At most `limit` characters; a text that was cut ends with `ellipsis`."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ellipsis), 0)] + ellipsis


def shorten(text: str, limit: int) -> str:
    """One line (see `single_line`), cut at a word boundary before `limit` characters, ending with an ellipsis."""
    text = single_line(text)
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip(" ,;:.") + "…"


def clip(text: str, limit: int = 200) -> str:
    """Untrusted text (titles, reasons) fit for a terminal: no control characters, capped."""
    return cut(printable(text), limit)


def oneline(text: str, width: int) -> str:
    """Untrusted text on one terminal line: control characters dropped, cut to `width` (no ellipsis)."""
    return cut(squash(printable(text)), width, ellipsis="")
