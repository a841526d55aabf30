"""The CLI's own cleaners of untrusted text (titles, reasons, ids) for a terminal.

Kept apart on purpose: they are to give way to digestbot's one text cleaner (`bot.text`).
`bot._console.clean` is the third.
"""

from __future__ import annotations


def clip(text: str, limit: int = 200) -> str:
    """Untrusted text (titles, reasons) fit for a terminal: no control characters, capped."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def oneline(text: str, width: int) -> str:
    """Untrusted text on one terminal line: control characters dropped, cut to `width`."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(clean.split())[:width]
