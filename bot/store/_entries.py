"""Entries by canonical id (merged as sources enrich them) and each source's fetch state."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, insert, select, update

from ..models import Entry, FetchState
from ._base import StoreBase, _again_on_conflict, _batches, _now
from ._schema import entries, source_state


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What the store knows of a source's last fetch."""

    name: str
    last_fetch: datetime | None
    last_success: datetime | None
    last_error: str
    counts: dict[str, int]


def _entry_row(e: Entry, now: datetime) -> dict[str, Any]:
    return {
        "id": e.id,
        "title": e.title,
        "summary": e.summary,
        "url": e.url,
        "authors": json.dumps(list(e.authors)),
        "published": e.published or now,
        "source": e.source,
        "tags": json.dumps(list(e.tags)),
        "extra": json.dumps(dict(e.extra)),
    }


def _entry(row: Any) -> Entry:
    return Entry(
        id=row.id,
        title=row.title,
        summary=row.summary,
        url=row.url,
        authors=tuple(json.loads(row.authors)),
        published=row.published,
        source=row.source,
        tags=tuple(json.loads(row.tags)),
        extra=json.loads(row.extra),
    )


# Counters that only grow (a stale copy read later must not lower them) and facts about the
# first sighting (a paper first announced "new" stays "new" when arXiv later lists its revision).
_GROWING = ("upvotes", "comments", "github_stars", "version")
_FIRST = ("announce_type",)
# Popularity counts: settled by the latest fetch. A copy that says when it was counted
# (`counted_at`, an ISO UTC time the hf-daily source stamps on each fetch) replaces counts
# counted earlier, even lower ones (an upvote taken back); a copy without it only raises them.
_COUNTS = ("upvotes", "comments", "github_stars")
COUNTED_AT = "counted_at"


def _counted_later(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether `new`'s counts were fetched after `old`'s (a copy without a time is not)."""
    b = new.get(COUNTED_AT)
    if not isinstance(b, str):
        return False
    a = old.get(COUNTED_AT)
    return not isinstance(a, str) or b > a


def _merged_extra(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    extra = {**old, **new}
    later = _counted_later(old, new)
    for key in _GROWING:
        a, b = old.get(key), new.get(key)
        if isinstance(a, int | float) and isinstance(b, int | float):
            extra[key] = b if later and key in _COUNTS else max(a, b)
    for key in _FIRST:
        if key in old:
            extra[key] = old[key]
    if COUNTED_AT in old and (
        not later or all(extra.get(k) == old.get(k) for k in _COUNTS)
    ):  # the same counts again: the entry is unchanged (no update, no refit)
        extra[COUNTED_AT] = old[COUNTED_AT]
    return extra


def merge_entry(old: Entry, new: Entry) -> Entry:
    """The one rule for the same paper read twice: `new` enriches `old`, never loses what it had.

    Edits to title, summary and url are taken; the first source and first date stay; authors
    fill in when missing; tags are joined; extras are merged (see `_GROWING`, `_FIRST` and
    `_COUNTS`: the latest fetched popularity counts win).
    The store applies it to every stored entry; `digestbot match --entries` to its files.
    """
    return replace(
        old,
        title=new.title or old.title,
        summary=new.summary or old.summary,
        url=new.url or old.url,
        source=old.source or new.source,
        authors=old.authors or new.authors,
        tags=old.tags + tuple(t for t in new.tags if t not in old.tags),
        extra=_merged_extra(old.extra, new.extra),
    )


def _merge(old: Any, new: dict[str, Any]) -> dict[str, Any]:
    """The columns `merge_entry` changes in a stored row `old` when the row `new` comes in."""
    before = _entry(old)
    was = _entry_row(before, before.published or _now())
    now = _entry_row(merge_entry(before, _entry(SimpleNamespace(**new))), was["published"])
    return {k: now[k] for k in _MERGED if now[k] != was[k]}


_MERGED = (
    "title",
    "summary",
    "url",
    "source",
    "authors",
    "tags",
    "extra",
)  # the columns merging sets


class EntryStore(StoreBase):
    """Entries and source fetch state."""

    @_again_on_conflict
    def upsert_entries(
        self, items: Sequence[Entry], now: datetime | None = None
    ) -> tuple[int, int, int]:
        """Store entries by canonical id; return (new, updated, unchanged). Later sources enrich."""
        now = now or _now()
        rows: dict[str, dict[str, Any]] = {}
        for e in items:
            row = _entry_row(e, now)
            if e.id in rows:  # the same paper twice in one batch: merge in memory, as in the table
                prev = rows[e.id]
                prev.update(_merge(SimpleNamespace(**prev), row))
            else:
                rows[e.id] = row
        new = updated = unchanged = 0
        ids = list(rows)
        with self.begin() as conn:
            existing: dict[str, Any] = {}
            for batch in _batches(ids):
                for r in conn.execute(select(entries).where(entries.c.id.in_(batch))):
                    existing[r.id] = r
            fresh = [
                {**r, "first_seen": now, "updated_at": now}
                for k, r in rows.items()
                if k not in existing
            ]
            if fresh:
                conn.execute(insert(entries), fresh)
                new = len(fresh)
            for k, old in existing.items():
                changes = _merge(old, rows[k])
                if changes:
                    conn.execute(
                        update(entries).where(entries.c.id == k).values(**changes, updated_at=now)
                    )
                    updated += 1
                else:
                    unchanged += 1
        return new, updated, unchanged

    def entries_since(self, since: datetime) -> list[Entry]:
        """Entries first seen or published at or after `since`, newest first."""
        with self.begin() as conn:
            rows = conn.execute(
                select(entries)
                .where((entries.c.first_seen >= since) | (entries.c.published >= since))
                .order_by(entries.c.published.desc(), entries.c.id)
            )
            return [_entry(r) for r in rows]

    def entries_published_since(self, since: datetime) -> list[Entry]:
        """Entries published at or after `since`, newest first: what a digest may offer.

        An entry without a date of its own was stored with its first-seen time as `published`,
        so it counts from when it was first seen; an old paper seen today for the first time (a
        feed added with its archive) does not.
        """
        with self.begin() as conn:
            rows = conn.execute(
                select(entries)
                .where(entries.c.published >= since)
                .order_by(entries.c.published.desc(), entries.c.id)
            )
            return [_entry(r) for r in rows]

    def entries_published_between(self, start: datetime, end: datetime) -> list[Entry]:
        """Entries published in [start, end), newest first: a day's or a week's papers (the web pages)."""
        with self.begin() as conn:
            rows = conn.execute(
                select(entries)
                .where((entries.c.published >= start) & (entries.c.published < end))
                .order_by(entries.c.published.desc(), entries.c.id)
            )
            return [_entry(r) for r in rows]

    def latest_published(self, before: datetime, counted: bool = True) -> datetime | None:
        """The newest `published` before `before` (of an entry with upvotes when `counted`,
        else of any entry when none has them): which day the front page shows."""
        with self.begin() as conn:
            for only in (True, False) if counted else (False,):
                q = select(func.max(entries.c.published)).where(entries.c.published < before)
                if only:
                    q = q.where(entries.c.extra.contains('"upvotes"'))
                found: datetime | None = conn.execute(q).scalar()
                if found is not None:
                    return found if found.tzinfo else found.replace(tzinfo=UTC)
        return None

    def corpus_fingerprint(self, since: datetime) -> tuple[int, datetime | None]:
        """What changes whenever `entries_since(since)` would return something else.

        (how many entries, the latest `updated_at` among them): a new or enriched entry moves
        the second, one leaving the window lowers the first. One aggregate query, no rows read.
        """
        window = (entries.c.first_seen >= since) | (entries.c.published >= since)
        with self.begin() as conn:
            count, latest = conn.execute(
                select(func.count(), func.max(entries.c.updated_at)).where(window)
            ).one()
        return int(count), latest

    def get_entries(self, ids: Iterable[str]) -> dict[str, Entry]:
        """Stored entries by id."""
        wanted = list(ids)
        found: dict[str, Entry] = {}
        with self.begin() as conn:
            for batch in _batches(wanted):
                for r in conn.execute(select(entries).where(entries.c.id.in_(batch))):
                    found[r.id] = _entry(r)
        return found

    # --- sources ----------------------------------------------------------------------------
    def get_state(self, name: str) -> FetchState:
        """The conditional-GET state and cursor kept for a source."""
        with self.begin() as conn:
            r = conn.execute(select(source_state).where(source_state.c.name == name)).first()
        if r is None:
            return FetchState()
        return FetchState(r.etag, r.last_modified, json.loads(r.cursor))

    @_again_on_conflict
    def save_fetch(
        self,
        name: str,
        state: FetchState | None,
        error: str = "",
        counts: dict[str, int] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record a fetch: its new state on success, its error on failure (the old state is kept)."""
        now = now or _now()
        values: dict[str, Any] = {"last_fetch": now, "last_error": error}
        if state is not None:
            values.update(
                etag=state.etag,
                last_modified=state.last_modified,
                cursor=json.dumps(state.cursor),
                last_success=now,
            )
        if counts is not None:
            values["last_counts"] = json.dumps(counts)
        with self.begin() as conn:
            done = conn.execute(
                update(source_state).where(source_state.c.name == name).values(**values)
            )
            if done.rowcount == 0:
                conn.execute(insert(source_state).values(name=name, **values))

    def source_statuses(self) -> list[SourceStatus]:
        """Each source's last fetch, last success, last error and counts."""
        with self.begin() as conn:
            rows = conn.execute(select(source_state).order_by(source_state.c.name)).all()
        return [
            SourceStatus(
                r.name, r.last_fetch, r.last_success, r.last_error, json.loads(r.last_counts)
            )
            for r in rows
        ]
