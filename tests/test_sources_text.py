"""Text clean-up: whitespace, HTML to plain text, author lists, canonical ids."""

from __future__ import annotations

import pytest

from bot.sources._authors import author_name, split_authors
from bot.sources._ids import arxiv_id, canonical_id, normalize_url
from bot.text import html_to_text, plain_text, squash


def test_squash_unwraps_hard_wrapped_titles() -> None:
    assert squash("Scaling for\n  Contrastive Loss ") == "Scaling for Contrastive Loss"
    assert squash(None) == ""


def test_html_to_text_drops_scripts_styles_and_tags() -> None:
    html = (
        '<p onclick="x()">Hello <b>world</b></p><script>steal()</script><style>p{}</style> a &lt; b'
    )
    assert html_to_text(html) == "Hello world a < b"


def test_html_to_text_decodes_entities_without_tags() -> None:
    assert html_to_text("Fish &amp; chips") == "Fish & chips"


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("Using <T> generics", "text/plain", "Using <T> generics"),
        ("$a<b$ and $c>d$", "text/plain", "$a<b$ and $c>d$"),
        ("a <b>bold</b> move", "text/plain", "a bold move"),
        ("<script>alert(1)</script>Safe", "text/plain", "Safe"),
        ("x &amp; y", "text/html", "x & y"),
    ],
)
def test_plain_text_follows_the_declared_type_but_strips_real_markup(
    value: str, kind: str, expected: str
) -> None:
    assert plain_text(value, {"type": kind}) == expected


@pytest.mark.parametrize(
    ("creator", "names"),
    [
        (
            "Pritam Dey, Zhengwu Zhang, David B. Dunson",
            ["Pritam Dey", "Zhengwu Zhang", "David B. Dunson"],
        ),
        (
            "LAPALU, N., SIMON, A., Plaumann, P.-L., O'Connell, R. J.",
            ["LAPALU, N.", "SIMON, A.", "Plaumann, P.-L.", "O'Connell, R. J."],
        ),
        (
            "A. Author, B. Author, et al. (909 additional authors not shown)",
            ["A. Author", "B. Author"],
        ),
        ("Zhang Li, Wang Ng", ["Zhang Li", "Wang Ng"]),
        ("Ada Lovelace and Charles Babbage", ["Ada Lovelace", "Charles Babbage"]),
    ],
)
def test_split_authors(creator: str, names: list[str]) -> None:
    assert split_authors(creator) == names


def test_author_name_from_rss_email_form() -> None:
    assert author_name("jonas@insanity.industries (Jonas Große Sundrup)") == "Jonas Große Sundrup"
    assert author_name('<a href="http://arxiv.org/a/x">X Y</a>') == "X Y"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2401.12345", ("2401.12345", None)),
        ("http://arxiv.org/abs/2401.12345v2", ("2401.12345", 2)),
        ("https://arxiv.org/pdf/2401.12345v3", ("2401.12345", 3)),
        ("oai:arXiv.org:2609.26811v1", ("2609.26811", 1)),
        ("arXiv:1805.08875v1", ("1805.08875", 1)),
        ("http://arxiv.org/abs/astro-ph/0601001v1", ("astro-ph/0601001", 1)),
        ("math.GT/0309136", ("math.GT/0309136", None)),
        # a link with a query, a fragment or the HTML view is the same paper
        ("https://arxiv.org/abs/2401.12345?context=cs.LG", ("2401.12345", None)),
        ("https://arxiv.org/abs/2401.12345v2#abstract", ("2401.12345", 2)),
        ("https://arxiv.org/html/2401.12345v2", ("2401.12345", 2)),
        ("https://arxiv.org/html/2401.12345v2/#S3", ("2401.12345", 2)),
        # an old-style id is spelled as arXiv does, whatever case it came in
        ("HEP-TH/9901001", ("hep-th/9901001", None)),
        ("https://arxiv.org/abs/HEP-TH/9901001v2", ("hep-th/9901001", 2)),
        ("arXiv:math.gt/0309136", ("math.GT/0309136", None)),
        # a bare id with a fragment is not a link: not taken for a paper
        ("2401.12345#x", None),
        ("https://arxiv.org/abs/2401.12345x", None),
        ("https://example.com/abs/2401.12345", None),
        ("tag:github.com,2008:Repository/1", None),
    ],
)
def test_arxiv_id(text: str, expected: tuple[str, int | None] | None) -> None:
    assert arxiv_id(text) == expected


def test_canonical_id_prefers_arxiv_then_guid_then_link() -> None:
    assert canonical_id("oai:arXiv.org:2401.12345v2", "https://x.org/a") == "arxiv:2401.12345"
    assert canonical_id("", "https://arxiv.org/abs/2401.12345") == "arxiv:2401.12345"
    assert (
        canonical_id("https://arxiv.org/html/2401.12345v2", "https://arxiv.org/abs/2401.12345?x=1")
        == "arxiv:2401.12345"
    )
    assert (
        canonical_id("HTTPS://Blog.Example.org:443/post/1#comments", "")
        == "https://blog.example.org/post/1"
    )
    assert canonical_id("", "http://Example.org:80") == "http://example.org/"


def test_normalize_url_keeps_query_drops_fragment() -> None:
    assert normalize_url("https://EX.org/a?b=1#c") == "https://ex.org/a?b=1"


def test_a_very_long_id_is_bounded_stably() -> None:
    from bot.sources._ids import MAX_ID, bounded_id

    long = "https://example.org/" + "x" * 400
    assert len(bounded_id(long)) == MAX_ID
    assert bounded_id(long) == bounded_id(long) != bounded_id(long + "y")
    assert bounded_id("https://example.org/a") == "https://example.org/a"
