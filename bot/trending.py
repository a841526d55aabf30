"""Popularity and the trending digests (README "Trending").

What a source knows of a paper's popularity lives in its entry's `extra`: Hugging Face upvotes
and comments, GitHub stars when the paper has a repository. From them:

- `rank_key(entry)`: most upvoted first, then most commented, then most starred; the upvotes
  decide, as on the Daily Papers page. `popularity(entry)` is the one number the blend uses:
  the upvotes, else the comments, else the stars / 10; None when the entry carries none of
  them (an arXiv listing, a blog post): unknown, not zero.
- A subscriber with `trending = true` and nothing else to match on gets the `max_items` most
  popular entries featured since the day of their last digest (the lookback window for a first
  one), most popular first, above `min_upvotes`, never one already sent: `trending_pool`.
- With interests as well ("trending in my interests") the matcher's selection is kept and only
  reordered by `blend`: half relevance (the score, scaled to 0..1 within the digest), half
  popularity (`log(1 + popularity)` scaled to 0..1 within the digest; unknown counts 0).
  `min_upvotes` drops the entries whose upvotes are known and lower; an entry without counts
  stays (it has no count to fall short of).
- A plain relevance digest (`trending = false`) is never touched here: entries without counts
  are never pushed down by those with them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .models import DigestItem, Entry, Interests, Subscriber

COUNTS = ("upvotes", "comments", "github_stars")  # the popularity counters an entry may carry
STARS_PER_POINT = 10  # without upvotes or comments: ten GitHub stars count as one
RELEVANCE_SHARE = 0.5  # "trending in my interests": the relevance share of the blend


def counts(extra: Mapping[str, Any]) -> dict[str, int]:
    """The popularity counters an entry's `extra` carries (whole numbers ≥ 0 only)."""
    out: dict[str, int] = {}
    for key in COUNTS:
        value = extra.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out[key] = value
    return out


def popularity(entry: Entry) -> float | None:
    """The upvotes, else the comments, else the stars / 10; None when the entry has no counts."""
    known = counts(entry.extra)
    if "upvotes" in known:
        return float(known["upvotes"])
    if "comments" in known:
        return float(known["comments"])
    if "github_stars" in known:
        return known["github_stars"] / STARS_PER_POINT
    return None


def trending_only(interests: Interests) -> bool:
    """`trending = true` with nothing else to match on: the digest is the most popular entries."""
    return interests.trending and not interests.has_subject


def by_popularity(entries: Sequence[Entry]) -> list[Entry]:
    """Entries most upvoted first (then most commented, most starred, newest, by id); those
    without counts last."""

    def key(e: Entry) -> tuple[bool, float, int, int, float, str]:
        known, pop = counts(e.extra), popularity(e)
        when = e.published.timestamp() if e.published else 0.0
        return (
            pop is None,
            -known.get("upvotes", -1),
            -known.get("comments", 0),
            -known.get("github_stars", 0),
            -when,
            e.id,
        )

    return sorted(entries, key=key)


def _below(entry: Entry, floor: int | None) -> bool:
    """Whether the entry's known upvotes fall short of `floor`."""
    ups = counts(entry.extra).get("upvotes")
    return floor is not None and ups is not None and ups < floor


def _excluded(entries: Sequence[Entry], phrases: Sequence[str]) -> set[str]:
    """The ids of the entries an `exclude` phrase matches, matched as the matcher matches it
    (on word boundaries, lightly stemmed, in the text it judges: `exclude = ["RL"]` keeps out
    "RL fine-tuning", not "world models")."""
    if not entries or not phrases:
        return set()
    from .match.features import entry_text, phrase_incidence, phrase_key  # numpy and scipy

    hits = phrase_incidence([entry_text(e) for e in entries], [phrase_key(p) for p in phrases])
    return {entries[i].id for i in hits.nonzero()[0].tolist()}


def _day(when: datetime) -> datetime:
    when = when.astimezone(UTC)
    return datetime(when.year, when.month, when.day, tzinfo=UTC)


class Featured:
    """The entries featured since a day, each day's list loaded once per planning pass.

    A weekly digest at 07:00 must still see the papers featured that Monday after its last
    digest, which the lookback window (counted in hours from now) leaves out. `load` is the
    store's `entries_published_since`; no day before `oldest` is loaded (a subscriber back after
    months gets the top of the last `lookback_days` + 1 days, not of the months).
    """

    def __init__(self, load: Callable[[datetime], Sequence[Entry]], oldest: datetime) -> None:
        self._load = load
        self._oldest = _day(oldest)
        self._days: dict[datetime, Sequence[Entry]] = {}

    def since(self, day: datetime) -> Sequence[Entry]:
        """The entries published on `day` or later (not before the oldest day)."""
        day = max(_day(day), self._oldest)
        if day not in self._days:
            self._days[day] = self._load(day)
        return self._days[day]


def trending_pool(
    interests: Interests,
    offered: Sequence[Entry],
    delivered: Collection[str],
    since: datetime | None,
) -> list[Entry]:
    """A trending-only digest's candidates, most popular first.

    Entries with counts, not sent to this subscriber yet, featured on the day of `since` (the
    last digest's slot) or later, not below `min_upvotes`, not matching an `exclude` phrase.
    Day by day because a featured day's papers keep coming in, and their upvotes keep growing,
    after the digest of that morning: the next digest still offers those it did not send.
    """
    start = _day(since) if since is not None else None
    pool = [
        e
        for e in offered
        if e.id not in delivered
        and popularity(e) is not None
        and (start is None or e.published is None or e.published >= start)
        and not _below(e, interests.min_upvotes)
    ]
    excluded = _excluded(pool, interests.exclude)
    return by_popularity([e for e in pool if e.id not in excluded])


TOP = "trending: among the most upvoted since your last digest"
BLENDED = "trending: ranked by relevance and upvotes"


def blend(items: Sequence[DigestItem], floor: int | None = None) -> list[DigestItem]:
    """The matcher's selection ordered by `RELEVANCE_SHARE` relevance + the rest popularity.

    Both parts are scaled to 0..1 within the digest: relevance by min-max of the scores,
    popularity as `log(1 + p) / log(1 + max p)` (0 for an entry without counts). Ties keep the
    matcher's order. Items whose known upvotes are below `floor` are dropped.
    """
    kept = [i for i in items if not _below(i.entry, floor)]
    if not kept:
        return []
    scores = [i.score for i in kept]
    lo, hi = min(scores), max(scores)
    pops = [popularity(i.entry) for i in kept]
    top = max((p for p in pops if p is not None), default=0.0)

    def mixed(n: int) -> float:
        rel = 1.0 if hi == lo else (kept[n].score - lo) / (hi - lo)
        p = pops[n]
        pop = math.log1p(p) / math.log1p(top) if p is not None and top > 0 else 0.0
        return RELEVANCE_SHARE * rel + (1 - RELEVANCE_SHARE) * pop

    order = sorted(range(len(kept)), key=lambda n: -mixed(n))
    return [
        DigestItem(
            kept[n].entry,
            kept[n].score,
            kept[n].why + ((BLENDED,) if pops[n] is not None else ()),
            kept[n].topic,
        )
        for n in order
    ]


def arrange(
    subscriber: Subscriber,
    chosen: Sequence[DigestItem],
    offered: Sequence[Entry],
    delivered: Collection[str],
    since: datetime | None,
    featured: Featured | None = None,
) -> list[DigestItem]:
    """What a trending subscriber's digest holds, best first (before the `max_items` cut).

    Trending only: `trending_pool` of `offered`, or of `featured.since(since)` when given and
    there was a last digest; trending with interests: `blend` of the matcher's `chosen`; not
    trending: `chosen` as it is.
    """
    interests = subscriber.interests
    if not interests.trending:
        return list(chosen)
    if trending_only(interests):
        if featured is not None and since is not None:
            offered = featured.since(since)
        pool = trending_pool(interests, offered, delivered, since)
        return [DigestItem(e, round(popularity(e) or 0.0, 4), (TOP,), "") for e in pool]
    return blend(chosen, interests.min_upvotes)
