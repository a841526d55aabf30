"""The Jinja2 environment over templates/: a `Digest` → email (text + HTML), Slack blocks, plain data.

Each channel names its renderer in its class (`Channel.render`); a new channel can send
`digest_data` or build on `item_view`, `subject` and `link` (in `items`), with no edit here.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    select_autoescape,
)

from .config import Settings
from .items import ItemView, clean, feed_link, humanize, item_view, link, safe_url
from .models import Digest
from .template_errors import template_errors
from .text import shorten

__all__ = [  # `clean`, `link`, `safe_url` and `item_view` live in `items`, and are used from here too
    "ItemView",
    "clean",
    "digest_data",
    "item_view",
    "link",
    "render_email",
    "render_slack",
    "safe_url",
    "slack_messages",
]

BUNDLED = Path(__file__).resolve().parent / "templates"  # inside an installed wheel
REPOSITORY = Path(__file__).resolve().parent.parent / "templates"  # in a source checkout

MAX_HTML = 100_000  # bytes: Gmail clips longer messages ("[Message clipped]")
BRIEF_TITLE_CHARS = 120  # a title in the by-title list, when even that list is long
# Slack's limits (api.slack.com/reference/block-kit): per message, per block, in all.
SLACK_MAX_BLOCKS = 50
SLACK_SECTION_CHARS = 3000
SLACK_HEADER_CHARS = 150
SLACK_MESSAGE_CHARS = 12_000  # msg_blocks_too_long comes at about 13K characters in all
SLACK_TEXT_CHARS = 4000
SLACK_FALLBACK_CHARS = 3900  # a message sent as text alone, when Slack refuses its blocks


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """The parts of one digest email."""

    subject: str
    text: str
    html: str


def template_dirs(override: Path | None) -> list[Path]:
    """Where templates are looked up: the user's override folder first, then the bundled ones."""
    dirs = [override] if override else []
    dirs += [d for d in (BUNDLED, REPOSITORY) if d.is_dir()]
    return dirs


@lru_cache(maxsize=8)
def environment(override: Path | None = None) -> Environment:
    """The Jinja2 environment, built once: HTML autoescaped, undefined names an error.

    The HTML template carries its styles inline, so nothing is inlined per message. A template
    file that changed is read again (a stat per use): a long-running scheduler sends with a
    template fixed while it runs.
    """
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(d)) for d in template_dirs(override)]),
        autoescape=select_autoescape(["html", "html.j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=True,
    )
    env.filters["slack"] = slack_escape
    env.filters["slack_url"] = slack_url
    return env


def _env(settings: Settings) -> Environment:
    """The environment for these settings (templates_dir as given: the CLI resolves it against the config file)."""
    return environment(settings.templates_dir)


def top_topic(digest: Digest) -> str:
    """The topic most items share (the first item's on a tie), or empty."""
    counts = Counter(i.topic for i in digest.items if i.topic)
    if not counts:
        return ""
    best = max(counts.values())
    return humanize(next(i.topic for i in digest.items if counts.get(i.topic) == best))


def local_date(digest: Digest) -> datetime:
    """The digest's slot in the subscriber's time zone."""
    return digest.slot.astimezone(ZoneInfo(digest.subscriber.timezone))


def kind(digest: Digest) -> str:
    """What the digest's papers are: "trending" for a trending subscription, else "new"."""
    return "trending" if digest.subscriber.interests.trending else "new"


def subject(digest: Digest) -> str:
    """A subject line that says what is inside: the date, how many, the top topic."""
    n = len(digest.items)
    top = top_topic(digest)
    lead = clean(digest.items[0].entry.title) if n else ""
    about = f" on {top}" if top else (f": {shorten(lead, 60)}" if lead else "")
    return (
        f"{n} {kind(digest)} paper{'s' if n != 1 else ''}{about}, {local_date(digest):%a %d %b %Y}"
    )


def _context(digest: Digest, settings: Settings) -> dict[str, Any]:
    views = [item_view(n, it, digest, settings) for n, it in enumerate(digest.items, 1)]
    sub = digest.subscriber
    return {
        "digest": digest,
        "subscriber": sub,
        "name": clean(sub.name or sub.id),
        "address": clean(sub.address),
        "items": views,
        "brief": [],
        "brief_more": 0,  # brief items left out (the list alone would pass `MAX_HTML`)
        "count": len(views),
        "kind": kind(digest),
        "more": digest.more,
        "date": local_date(digest),
        "date_text": f"{local_date(digest):%a %d %b %Y}",
        "subject": subject(digest),
        "top_topic": top_topic(digest),
        "base_url": settings.base_url.rstrip("/"),
        "unsubscribe_url": link(settings, "unsubscribe", digest),
        "manage_url": link(settings, "manage", digest),
        "view_url": link(settings, "view", digest),  # the whole digest on the web
        "feed_url": feed_link(settings, digest),
    }


def render_email(digest: Digest, settings: Settings, full: int | None = None) -> RenderedEmail:
    """The text and HTML bodies of a digest email, from the same context, HTML under `MAX_HTML`.

    When every item in full would make the HTML too long, the last items are listed by title
    only (both parts alike, so the two alternatives stay the same digest); when even that list
    is too long (links as long as `safe_url` lets through, many of them), without their links
    and with titles cut to `BRIEF_TITLE_CHARS`; when even that is too long, the last titles go
    too, counted, with a link to the whole digest on the web.
    `full` fixes how many items are shown in full instead (`check` renders that list too).
    """
    with template_errors():
        return _render_email(digest, settings, full)


def _render_email(digest: Digest, settings: Settings, full: int | None) -> RenderedEmail:
    env = _env(settings)
    html_tpl, text_tpl = env.get_template("email.html.j2"), env.get_template("email.txt.j2")
    ctx = _context(digest, settings)
    views = ctx["items"]

    def split(full: int) -> dict[str, Any]:
        return {**ctx, "items": views[:full], "brief": views[full:]}

    if full is not None:  # the first `full` items in full, the rest by title (`check`)
        parts = split(full)
        return RenderedEmail(ctx["subject"], text_tpl.render(parts), html_tpl.render(parts))

    def fits(parts: dict[str, Any]) -> bool:
        return len(html_tpl.render(parts).encode()) <= MAX_HTML

    parts = ctx
    html = html_tpl.render(parts)  # the common case: one render
    if len(html.encode()) > MAX_HTML:  # the most items in full that still fit, the rest by title
        parts = split(_most(len(views) - 1, lambda k: fits(split(k))))
        if not parts["items"] and not fits(parts):  # titles only, shorter
            brief = [replace(v, url="", title=shorten(v.title, BRIEF_TITLE_CHARS)) for v in views]
            parts = {**parts, "brief": brief}
            if not fits(parts):  # the most titles that fit; the rest on the web

                def upto(k: int) -> dict[str, Any]:
                    return {**parts, "brief": brief[:k], "brief_more": len(brief) - k}

                parts = upto(_most(len(brief) - 1, lambda k: fits(upto(k))))
        html = html_tpl.render(parts)
    return RenderedEmail(subject=ctx["subject"], text=text_tpl.render(parts), html=html)


def _most(top: int, fits: Callable[[int], bool]) -> int:
    """The largest k in 0..top with fits(k), by bisection (fits(0) is taken as true)."""
    lo, hi = 0, top
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def digest_data(digest: Digest, settings: Settings) -> dict[str, Any]:
    """The digest as plain JSON-ready data (what a channel without templates of its own sends):
    id, subject, date, the items' ready fields and the manage/unsubscribe links."""
    ctx = _context(digest, settings)
    keys = (
        "n",
        "title",
        "url",
        "authors",
        "source",
        "topic",
        "abstract",
        "why_text",
        "up_url",
        "down_url",
        "entry_id",
        "upvotes",
        "comments",
        "stars",
        "counts",
        "tldr",
    )
    return {
        "digest_id": digest.id,
        "subscriber": digest.subscriber.id,
        "slot": digest.slot.isoformat(),
        "subject": ctx["subject"],
        "date": ctx["date_text"],
        "more": digest.more,
        "items": [
            {k: getattr(v, k) for k in keys}
            | {"score": v.score, "why": list(v.why), "links": dict(v.links)}
            for v in ctx["items"]
        ],
        "manage_url": ctx["manage_url"],
        "unsubscribe_url": ctx["unsubscribe_url"],
        "view_url": ctx["view_url"],
    }


# --- Slack -------------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Escape &, < and > for Slack mrkdwn, so feed text cannot make links or mentions."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_url(url: str) -> str:
    """A URL fit for `<url|label>`: the characters that would end the link percent-encoded."""
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~-._")


_CUT_ENTITY = re.compile(r"&[a-z]{0,3}$")  # the start of an `&amp;`, `&lt;` or `&gt;`, cut


def cap_mrkdwn(text: str, limit: int) -> str:
    """At most `limit` characters, never cutting through an `&amp;` entity or a `<link|label>`.

    A link the cut would go through keeps its label without its URL (the URL is what is long),
    rather than going whole; an `&` inside a URL is the URL's own, not an entity.
    """
    while len(text) > limit:
        cut = text[: limit - 1]
        at = cut.rfind("<")
        if at != -1 and ">" not in cut[at:]:
            end = text.find(">", at)
            label = text[at + 1 : end].partition("|")[2] if end != -1 else ""
            if label:
                text = text[:at] + label + text[end + 1 :]
                continue
            cut = cut[:at]
        return _CUT_ENTITY.sub("", cut) + "…"
    return text


def _chars(block: dict[str, Any]) -> int:
    """The characters a block counts toward Slack's total for a message."""
    if block["type"] in ("header", "section"):
        return len(block["text"]["text"])
    if block["type"] == "context":
        return sum(len(e["text"]) for e in block["elements"])
    if block["type"] == "actions":
        return sum(len(e["text"]["text"]) for e in block["elements"])
    return 0


def _item_blocks(
    view: ItemView, digest: Digest, ctx: dict[str, Any], env: Environment
) -> list[dict[str, Any]]:
    text = env.get_template("slack_item.md.j2").render({**ctx, "item": view}).strip()
    shown = (view.counts, view.source, view.topic)
    context = " · ".join(slack_escape(p) for p in shown if p) or "digestbot"
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": cap_mrkdwn(text, SLACK_SECTION_CHARS)},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": cap_mrkdwn(context, 2000)}]},
    ]
    buttons = []
    for vote, label in (("up", "👍 more like this"), ("down", "👎 less like this")):
        button: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": label, "emoji": True},
            # The action id names the digest and the entry, for an interactive Slack app.
            "action_id": f"digestbot_{vote}:{digest.id}:{view.entry_id}"[:255],
            "value": f"{digest.id} {view.entry_id}"[:2000],
        }
        url = view.up_url if vote == "up" else view.down_url
        if len(url) <= 3000:
            button["url"] = url  # without an interactive app, the button opens the web app's link
        buttons.append(button)
    blocks.append({"type": "actions", "block_id": f"fb{view.n}", "elements": buttons})
    return blocks


def slack_messages(digest: Digest, settings: Settings) -> list[dict[str, Any]]:
    """The digest as Slack messages, each within Slack's limits; the first has the header.

    Each is `{"text", "blocks"}`; the channel posts the rest as replies in the first's thread.
    """
    with template_errors():
        return _slack_messages(digest, settings)


def _slack_messages(digest: Digest, settings: Settings) -> list[dict[str, Any]]:
    env = _env(settings)
    ctx = _context(digest, settings)
    head = subject(digest)
    header = {
        "type": "header",
        "text": {"type": "plain_text", "text": shorten(head, SLACK_HEADER_CHARS), "emoji": True},
    }
    groups = [_item_blocks(v, digest, ctx, env) for v in ctx["items"]]
    if digest.more:
        note = (
            f"…and {digest.more} more matched; <{slack_url(ctx['view_url'])}|the whole digest>"
            f" · <{slack_url(ctx['manage_url'])}|raise max_items or manage your digest>"
        )
        groups.append([{"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}])
    pages: list[list[dict[str, Any]]] = [[header]]
    for group in groups:
        page = pages[-1]
        too_many = len(page) + len(group) > SLACK_MAX_BLOCKS
        too_long = sum(map(_chars, page)) + sum(map(_chars, group)) > SLACK_MESSAGE_CHARS
        if (too_many or too_long) and len(page) > (1 if page is pages[0] else 0):
            pages.append([])
        pages[-1].extend(group)
    fallback = slack_escape(head)
    return [
        {
            "text": cap_mrkdwn(
                fallback if i == 0 else f"{fallback} (part {i + 1} of {len(pages)})",
                SLACK_TEXT_CHARS,
            ),
            "blocks": page,
        }
        for i, page in enumerate(pages)
    ]


def render_slack(digest: Digest, settings: Settings) -> dict[str, Any]:
    """The Slack message for a digest: `text` fallback and `blocks` of the first message, and in
    `thread` the follow-up messages (a long digest is split to keep Slack's limits)."""
    first, *rest = slack_messages(digest, settings)
    return {**first, "thread": rest}
