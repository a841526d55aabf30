"""The pages of papers: `/` (the latest day, with the subscribe form), `/day/YYYY-MM-DD`,
`/week/YYYY-Www` and `/digest/<token>` (one whole digest: every mail's "view in browser")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..items import ItemView, author_line, count_text, entry_links, item_view, safe_url, tldr_of
from ..models import Digest, Entry, Subscriber
from ..text import shorten
from ..trending import by_popularity
from ._state import MANAGE_MAX_AGE, Web, link_body, web_of

DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
WEEK = re.compile(r"(\d{4})-W(\d{2})")
PAGE_PAPERS = 100  # a day or week page lists at most this many papers
VIEW_MAX_AGE = MANAGE_MAX_AGE  # a digest's "view in browser" link works for a year


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper as a day or week page shows it (plain text; the template escapes it)."""

    n: int
    title: str
    url: str
    authors: str
    counts: str
    tldr: str
    abstract: str
    links: tuple[tuple[str, str], ...]


def paper(n: int, e: Entry) -> Paper:
    """A stored entry as a page shows it."""
    url = safe_url(e.url)
    return Paper(
        n=n,
        title=shorten(e.title, 300) or e.id,
        url=url,
        authors=author_line(e),
        counts=count_text(e),
        tldr=tldr_of(e),
        abstract=shorten(e.summary, 400),
        links=entry_links(e, url),
    )


def parse_day(text: str) -> date | None:
    """`YYYY-MM-DD` as a date; None for anything else, an impossible date included, and the
    calendar's first and last days (0001-01-01, 9999-12-31: a page links the day before and after)."""
    m = DAY.fullmatch(text)
    if not m:
        return None
    try:
        day = date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None
    return day if date.min < day < date.max else None


def parse_week(text: str) -> date | None:
    """`YYYY-Www` (ISO week) as its Monday; None for anything else (week 54, week 0, …), and the
    calendar's first and last weeks (0001-W01, 9999-W52: a page links the week before and after)."""
    m = WEEK.fullmatch(text)
    if not m:
        return None
    try:
        monday = date.fromisocalendar(int(m[1]), int(m[2]), 1)
    except ValueError:
        return None
    week = timedelta(days=7)
    return monday if date.min + week <= monday <= date.max - week else None


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def week_name(day: date) -> str:
    """The ISO week a day is in, as `/week/` spells it."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _papers(web: Web, start: date, days: int) -> list[Paper]:
    found = web.store.entries_published_between(_start(start), _start(start + timedelta(days)))
    return [paper(n, e) for n, e in enumerate(by_popularity(found)[:PAGE_PAPERS], 1)]


def _not_found(request: Request, what: str) -> Response:
    return web_of(request).message(
        request,
        404,
        "No such page",
        f"{what} Days are written YYYY-MM-DD (such as 2026-06-12), weeks YYYY-Www (such as 2026-W24).",
        ("The latest papers", "/"),
    )


async def _day_page(request: Request, day: date, front: bool) -> Response:
    web = web_of(request)
    papers = await run_in_threadpool(_papers, web, day, 1)
    ctx: dict[str, Any] = {
        "heading": f"Papers of {day:%A %d %B %Y}",
        "papers": papers,
        "previous": ("Previous day", f"/day/{day - timedelta(days=1)}"),
        "next": ("Next day", f"/day/{day + timedelta(days=1)}"),
        "week": (f"The week {week_name(day)}", f"/week/{week_name(day)}"),
        "front": front,
    }
    if front:
        ctx.update(web.blank_form(request))
    return web.page(request, "papers.html", **ctx)


async def latest(request: Request) -> Response:
    """`/`: the latest day's papers in the store, most upvoted first, and the subscribe form."""
    web = web_of(request)
    now = datetime.now(UTC)
    newest = await run_in_threadpool(web.store.latest_published, now + timedelta(days=1))
    day = (newest or now).astimezone(UTC).date()
    return await _day_page(request, day, front=True)


async def day_page(request: Request) -> Response:
    """`/day/YYYY-MM-DD`: that day's papers, most upvoted first; 404 for an impossible date."""
    day = parse_day(request.path_params["day"])
    if day is None:
        return _not_found(request, "There is no such day.")
    return await _day_page(request, day, front=False)


async def week_page(request: Request) -> Response:
    """`/week/YYYY-Www`: the week's papers (Monday to Sunday, UTC), most upvoted first."""
    monday = parse_week(request.path_params["week"])
    if monday is None:
        return _not_found(request, "There is no such week.")
    web = web_of(request)
    papers = await run_in_threadpool(_papers, web, monday, 7)
    sunday = monday + timedelta(days=6)
    return web.page(
        request,
        "papers.html",
        heading=f"Papers of the week {week_name(monday)} ({monday:%d %b} – {sunday:%d %b %Y})",
        papers=papers,
        previous=("Previous week", f"/week/{week_name(monday - timedelta(days=7))}"),
        next=("Next week", f"/week/{week_name(monday + timedelta(days=7))}"),
        week=None,
        front=False,
    )


def _digest_views(web: Web, body: dict[str, Any]) -> tuple[Digest, list[ItemView]] | None:
    row = web.store.get_digest(body["digest_id"])
    if row is None or row.subscriber_id != body["subscriber_id"]:
        return None
    items = tuple(web.store.digest_items(row.id))
    sub = Subscriber(id=row.subscriber_id, email=str(body.get("address", "")))
    digest = Digest(row.id, sub, row.slot, items, row.more)
    return digest, [item_view(n, it, digest, web.settings) for n, it in enumerate(items, 1)]


async def digest_page(request: Request) -> Response:
    """`/digest/<token>`: one whole digest as it was sent, the target of "view in browser"."""
    web = web_of(request)
    body = link_body(request, "view", VIEW_MAX_AGE)
    if isinstance(body, Response):
        return body
    found = await run_in_threadpool(_digest_views, web, body)
    if found is None:
        return web.message(request, 404, "No such digest", "This digest is no longer kept.")
    digest, views = found
    return web.page(
        request,
        "digest.html",
        heading=f"Your digest of {digest.slot:%A %d %B %Y}",
        items=views,
        more=digest.more,
        manage_url=web.link("manage", digest.subscriber.id, address=digest.subscriber.email),
    )
