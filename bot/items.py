"""One digest item as every channel and page shows it (`ItemView`), and the signed links into the web app.

An item shows its popularity when a source knows it (HF upvotes and comments, GitHub stars),
HF's `ai_summary` as a one-line TL;DR, and its links: the Hugging Face page, the arXiv abstract,
the PDF and the code. Every text here is plain (one line, cut); the templates escape it for
HTML, Slack mrkdwn or Atom, and every URL is http(s) or empty.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from . import tokens
from .config import Settings
from .models import Digest, DigestItem, Entry
from .text import shorten, single_line
from .trending import counts

ABSTRACT_CHARS = 240  # one or two lines of the abstract
TLDR_CHARS = 300
AUTHORS_SHOWN = 6
# The web app's path for each kind of link (the kind is the token's salt).
PATHS = {"view": "digest"}
ADDRESSED = ("manage", "unsubscribe", "view", "feed")  # links that carry the address mailed to


@dataclass(frozen=True, slots=True)
class ItemView:
    """One digest item as the templates show it: plain text fields and ready links.

    `entry`, `score`, `why` (a tuple) and `topic` are the item's own, as templates written for
    `DigestItem` expect; the rest is ready to show.
    """

    entry: Entry
    score: float
    n: int
    title: str
    url: str  # http(s) only, else empty: a feed cannot smuggle javascript: links in
    authors: str
    source: str
    topic: str
    abstract: str
    why: tuple[str, ...]
    why_text: str
    up_url: str
    down_url: str
    entry_id: str
    upvotes: int | None = None
    comments: int | None = None
    stars: int | None = None
    counts: str = ""  # "▲ 118 upvotes · 3 comments · ★ 251 stars", or empty when unknown
    tldr: str = ""  # HF's ai_summary, one line
    # (label, url) for Hugging Face, arXiv, PDF, Code, Project: each http(s), none twice
    links: tuple[tuple[str, str], ...] = ()


def clean(text: str) -> str:
    """One line of plain text: control characters (newlines too) become spaces."""
    return single_line(text)


# The longest link an item shows, counted as it goes on the wire (a non-ASCII byte is %XX).
# Real article and paper links are far shorter; 2,000 is what browsers, mail clients and
# sitemaps (2,048) have long taken, and what a Slack section (3,000) holds beside its title.
# A feed can carry a <link> of 100,000 characters: three of those made a 272 KB email, over the
# 100 KB the HTML promises. A longer link is not shown; its item keeps its title.
MAX_URL = 2000


def safe_url(url: object) -> str:
    """The URL if it is http(s) and at most `MAX_URL` long, else empty."""
    if not isinstance(url, str) or len(url) > MAX_URL:
        return ""
    url = clean(url)
    try:
        scheme = urlsplit(url).scheme
    except ValueError:  # "http://[abc/": no URL at all
        return ""
    if scheme not in ("http", "https") or " " in url:
        return ""
    return url if sum(1 if b < 0x80 else 3 for b in url.encode()) <= MAX_URL else ""


def humanize(topic: str) -> str:
    """A topic slug as words: `efficient-inference` → `efficient inference`."""
    return clean(topic.replace("-", " ").replace("_", " "))


def _local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("localhost", "127.0.0.1", "::1")


def link(settings: Settings, kind: str, digest: Digest, entry_id: str = "") -> str:
    """A signed link into the web app: `{base}/unsubscribe|manage|feedback|digest/{token}`
    (`feed_link` for the feed)."""
    base = settings.base_url.rstrip("/")
    if not settings.secret_key and _local(base):
        # Links that only work on this machine (the quick start): the development key, and no
        # warning about it here; `digestbot serve` and links to any other host still warn.
        settings = replace(settings, secret_key=tokens.DEV_KEY)
    token = tokens.sign(
        settings,
        kind,
        digest.subscriber.id,
        entry_id=entry_id,
        digest_id=digest.id if kind != "feed" else "",
        now=digest.slot.timestamp(),
        address=digest.subscriber.email if kind in ADDRESSED else "",
    )  # issued at the slot: the same digest renders the same
    return f"{base}/{PATHS.get(kind, kind)}/{token}"


def feed_link(settings: Settings, digest: Digest) -> str:
    """The subscriber's personal Atom feed: `{base}/feed/{token}.xml`."""
    return link(settings, "feed", digest) + ".xml"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def count_text(entry: Entry) -> str:
    """What a source knows of the entry's popularity, in words; empty when it knows nothing."""
    known = counts(entry.extra)
    parts = []
    if "upvotes" in known:
        parts.append(f"▲ {_plural(known['upvotes'], 'upvote')}")
    if known.get("comments"):
        parts.append(_plural(known["comments"], "comment"))
    if "github_stars" in known:
        parts.append(f"★ {_plural(known['github_stars'], 'star')}")
    return " · ".join(parts)


def arxiv_number(entry: Entry) -> str:
    """The arXiv id of an `arxiv:<id>` entry, else empty."""
    return entry.id.removeprefix("arxiv:") if entry.id.startswith("arxiv:") else ""


def entry_links(entry: Entry, main: str = "") -> tuple[tuple[str, str], ...]:
    """(label, url): the Hugging Face page, the arXiv abstract, the PDF, the code, the project
    page, those the entry has; `main` (the title's link) is not repeated."""
    pid = arxiv_number(entry)
    x = entry.extra
    found = (
        ("Hugging Face", safe_url(x.get("hf_url"))),
        ("arXiv", f"https://arxiv.org/abs/{pid}" if pid else ""),
        ("PDF", safe_url(x.get("pdf_url")) or (f"https://arxiv.org/pdf/{pid}" if pid else "")),
        ("Code", safe_url(x.get("github_repo"))),
        ("Project", safe_url(x.get("project_page"))),
    )
    seen = {main}
    out = []
    for label, url in found:
        if url and len(url) <= MAX_URL and url not in seen:  # arXiv's are made from the id
            seen.add(url)
            out.append((label, url))
    return tuple(out)


def author_line(e: Entry) -> str:
    """The entry's authors on one line: the first `AUTHORS_SHOWN`, "et al." for more."""
    names = [n for n in map(clean, e.authors) if n]
    line = ", ".join(names[:AUTHORS_SHOWN]) + (" et al." if len(names) > AUTHORS_SHOWN else "")
    return shorten(line, 300)


def tldr_of(e: Entry) -> str:
    """Hugging Face's one-line `ai_summary`, when the entry has one."""
    tldr = e.extra.get("ai_summary")
    return shorten(tldr, TLDR_CHARS) if isinstance(tldr, str) else ""


def item_view(n: int, item: DigestItem, digest: Digest, settings: Settings) -> ItemView:
    """The template's view of one item."""
    e = item.entry
    feedback = link(
        settings, "feedback", digest, e.id
    )  # one token; the vote is the last path segment
    url = safe_url(e.url)
    known = counts(e.extra)
    return ItemView(
        entry=e,
        score=item.score,
        why=item.why,
        n=n,
        title=shorten(e.title, 300) or e.id,
        url=url,
        authors=author_line(e),
        source=shorten(e.source, 80),
        topic=humanize(item.topic),
        abstract=shorten(e.summary, ABSTRACT_CHARS),
        why_text=shorten("; ".join(item.why), 300),
        entry_id=e.id,
        up_url=f"{feedback}/up",
        down_url=f"{feedback}/down",
        upvotes=known.get("upvotes"),
        comments=known.get("comments"),
        stars=known.get("github_stars"),
        counts=count_text(e),
        tldr=tldr_of(e),
        links=entry_links(e, url),
    )
