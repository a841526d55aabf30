"""The one text cleaner: control characters, one line, the terminal, cutting to a width."""

from __future__ import annotations

import pytest

from bot.text import cut, printable, shorten, single_line, strip_controls


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Attention\x00 is all", "Attention is all"),
        ("bell\x07 and escape \x1b[31mred\x1b[0m", "bell and escape [31mred[0m"),
        ("C1 \x85next\x9b line", "C1 next line"),
        ("tab\tand\nnewline kept", "tab\tand\nnewline kept"),
        ("windows\r\nline\rends", "windows\nline\nends"),
        ("invoice_\u202egnp.exe", "invoice_gnp.exe"),  # right-to-left override
        ("iso\u2066late\u2069d \u202aembed\u202c", "isolated embed"),
        ("zero\u200bwidth\u200c \u200djoin\u2060er\ufeff", "zerowidth joiner"),
        ("marks \u200e\u200f", "marks "),
        ("lone \ud800surrogate", "lone surrogate"),
        ("Grüße, 東京, emoji 😀, non\u00a0breaking", "Grüße, 東京, emoji 😀, non\u00a0breaking"),
        ("", ""),
    ],
)
def test_strip_controls_drops_what_no_reader_or_database_should_get(raw: str, clean: str) -> None:
    assert strip_controls(raw) == clean
    assert strip_controls(clean) == clean  # idempotent
    clean.encode("utf-8")  # storable


def test_single_line_is_what_the_renderers_show() -> None:
    assert single_line("  Two\nlines\x00 ") == "Two lines"
    assert single_line("a\r\n\tb") == "a b"
    assert single_line("") == ""
    assert single_line("non\u00a0breaking") == "non\u00a0breaking"


def test_printable_is_safe_for_a_terminal() -> None:
    assert printable("ok") == "ok"
    assert printable("a\x1b[2Jb\tc\nd") == "a [2Jb c d"
    assert printable("evil\u202etxt.exe") == "evil txt.exe"


@pytest.mark.parametrize(
    ("text", "limit", "ellipsis", "expected"),
    [
        ("short", 10, "…", "short"),
        ("exactly10!", 10, "…", "exactly10!"),
        ("a longer text", 6, "…", "a lon…"),
        ("a longer text", 6, "", "a long"),
        ("abc", 0, "", ""),
    ],
)
def test_cut(text: str, limit: int, ellipsis: str, expected: str) -> None:
    assert cut(text, limit, ellipsis) == expected
    assert len(cut(text, limit, ellipsis)) <= max(limit, len(ellipsis))


def test_shorten_cuts_at_a_word_boundary() -> None:
    assert shorten("Scaling laws for neural language models", 20) == "Scaling laws for…"
    assert shorten("Supercalifragilisticexpialidocious", 10) == "Supercali…"
    assert shorten("short", 20) == "short"
    assert len(shorten("word " * 100, 50)) <= 50
