"""`/feed/<token>.xml`: a subscriber's personal Atom feed (RFC 4287) of the items of their digests.

The XML is built with ElementTree, which escapes every text and attribute; the texts are cleaned
of control characters first (XML 1.0 forbids them). The manage page links the feed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import tokens
from ..items import count_text, entry_links, safe_url, tldr_of
from ..models import DigestStatus
from ..text import printable, shorten
from ..tokens import TokenError
from ._state import Web, bad_link, web_of

ATOM = "http://www.w3.org/2005/Atom"
DIGESTS = 20  # the feed holds the items of this many latest digests sent


def feed_url(web: Web, subscriber_id: str, address: str = "") -> str:
    """The absolute URL of a subscriber's feed (what the manage page links)."""
    return web.link("feed", subscriber_id, address=address) + ".xml"


def _text(text: str, limit: int = 2000) -> str:
    """Plain one-line text safe for XML 1.0 (no control characters), cut at `limit`."""
    return shorten(printable(text), limit)


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add(parent: ET.Element, tag: str, text: str = "", **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text:
        el.text = text
    return el


def atom(web: Web, subscriber_id: str, self_url: str) -> bytes:
    """The feed document: the items of the subscriber's latest sent digests, newest first."""
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")
    _add(root, "id", f"urn:digestbot:feed:{subscriber_id}")
    _add(root, "title", _text(f"digestbot papers for {subscriber_id}", 200))
    _add(root, "link", rel="self", href=self_url, type="application/atom+xml")
    _add(root, "link", rel="alternate", href=f"{web.base}/", type="text/html")
    entries: list[ET.Element] = []
    updated = datetime(1970, 1, 1, tzinfo=UTC)
    sent = web.store.history(subscriber_id, limit=DIGESTS, statuses=[DigestStatus.SENT])
    items = web.store.digest_items_of(row.id for row in sent)
    for row in sent:
        at = row.sent_at or row.slot
        updated = max(updated, at)
        for item in items[row.id]:
            e = item.entry
            entry = ET.Element(f"{{{ATOM}}}entry")
            _add(entry, "id", f"urn:digestbot:{subscriber_id}:{_text(e.id, 300)}")
            _add(entry, "title", _text(e.title, 300) or _text(e.id, 300))
            _add(entry, "updated", _when(at))
            if e.published:
                _add(entry, "published", _when(e.published))
            url = safe_url(e.url)
            if url:
                _add(entry, "link", rel="alternate", href=url)
            for label, href in entry_links(e, url):
                _add(entry, "link", rel="related", href=href, title=label)
            for name in e.authors[:20]:
                if _text(name, 200):
                    author = _add(entry, "author")
                    _add(author, "name", _text(name, 200))
            tldr = tldr_of(e)
            summary = " — ".join(
                p for p in (count_text(e), f"TL;DR: {tldr}" if tldr else "", e.summary) if p
            )
            if summary:
                _add(entry, "summary", _text(summary), type="text")
            entries.append(entry)
    _add(root, "updated", _when(updated))
    author = _add(root, "author")  # RFC 4287: the feed's author stands for entries without one
    _add(author, "name", "digestbot")
    root.extend(entries)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


async def feed(request: Request) -> Response:
    """The Atom feed a `feed` token names; a bad or forged token is a plain 400 page."""
    web = web_of(request)
    token = request.path_params["token"]
    try:
        body: dict[str, Any] = tokens.verify(web.settings, token, "feed")
    except TokenError as e:
        return bad_link(request, e)
    sid, address = body["subscriber_id"], str(body.get("address") or "")
    if not await run_in_threadpool(web.link_reads, sid, address):
        return web.message(
            request,
            403,
            "This feed link is no longer valid",
            "It was made for an address this subscription no longer uses; "
            "the manage link in a recent digest has the current one.",
        )
    self_url = f"{web.base}/feed/{token}.xml"
    data = await run_in_threadpool(atom, web, sid, self_url)
    return Response(data, media_type="application/atom+xml; charset=utf-8")
