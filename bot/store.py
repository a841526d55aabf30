"""The store: SQLAlchemy Core tables and the only SQL in digestbot. SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text, TypeDecorator,
    UniqueConstraint, and_, create_engine, delete, event, func, insert, select, text, update,
)
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from .errors import StoreError
from .models import Delivery, DigestItem, Entry
from .sources import FetchState

SCHEMA_VERSION = 1
log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_T = TypeVar("_T")
RETRY_DELAYS = (0.2, 1.0, 3.0)  # seconds between tries of a ledger transaction the database dropped


def _transient(e: StoreError) -> bool:
    """Whether a failed transaction is worth running again: the server went away, or a lock."""
    cause = e.__cause__
    if not isinstance(cause, OperationalError):
        return False
    text = str(cause.orig).lower()
    return bool(cause.connection_invalidated) or any(
        w in text for w in ("locked", "busy", "connection", "server closed", "terminat", "shutdown", "timeout"))


def _again_on_conflict(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Run a read-then-write transaction once more if another process inserted the same key meanwhile.

    (PostgreSQL: two processes fetching one source at once; the second try sees the row and updates it.)
    """

    @functools.wraps(method)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return method(*args, **kwargs)
        except IntegrityError:
            return method(*args, **kwargs)

    return run


def retrying(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Run a ledger transaction again when the database was busy or the connection dropped.

    Only for methods that are safe to repeat: each is one transaction that either committed or
    did not, and repeating a committed one changes nothing that matters (see `claim`).
    """

    @functools.wraps(method)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        for delay in (*RETRY_DELAYS, None):
            try:
                return method(*args, **kwargs)
            except StoreError as e:
                if delay is None or not _transient(e):
                    raise
                log.warning("%s; trying again in %.1f s", e, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    return run


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

entries = Table(
    "entries", metadata,
    Column("id", String(300), primary_key=True),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("url", Text, nullable=False, default=""),
    Column("authors", Text, nullable=False, default="[]"),  # JSON list
    Column("published", UTCDateTime, nullable=False, index=True),  # first-seen time when undated
    Column("source", String(200), nullable=False, default=""),
    Column("tags", Text, nullable=False, default="[]"),  # JSON list
    Column("extra", Text, nullable=False, default="{}"),  # JSON object
    Column("first_seen", UTCDateTime, nullable=False, index=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

source_state = Table(
    "source_state", metadata,
    Column("name", String(200), primary_key=True),
    Column("etag", Text, nullable=False, default=""),
    Column("last_modified", Text, nullable=False, default=""),
    Column("cursor", Text, nullable=False, default="{}"),
    Column("last_fetch", UTCDateTime),
    Column("last_success", UTCDateTime),
    Column("last_error", Text, nullable=False, default=""),
    Column("last_counts", Text, nullable=False, default="{}"),
)

digests = Table(
    "digests", metadata,
    Column("id", String(300), primary_key=True),
    Column("subscriber_id", String(200), nullable=False),
    Column("slot", UTCDateTime, nullable=False),
    Column("status", String(20), nullable=False),  # pending | sent | failed | empty
    Column("channel", String(50), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("receipt", Text, nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("more", Integer, nullable=False, default=0),
    # Who is sending it and until when: a pending digest whose owner is gone is taken over.
    Column("owner", String(200), nullable=False, default=""),
    Column("lease_until", UTCDateTime),
    UniqueConstraint("subscriber_id", "slot", name="uq_digest_slot"),
)

deliveries = Table(
    "deliveries", metadata,
    Column("subscriber_id", String(200), nullable=False),
    Column("entry_id", String(300), ForeignKey("entries.id"), nullable=False),
    Column("digest_id", String(300), ForeignKey("digests.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("why", Text, nullable=False, default="[]"),
    Column("topic", String(200), nullable=False, default=""),
    UniqueConstraint("subscriber_id", "entry_id", name="uq_delivery_entry"),
)

feedback = Table(
    "feedback", metadata,
    Column("subscriber_id", String(200), primary_key=True),
    Column("entry_id", String(300), ForeignKey("entries.id"), primary_key=True),
    Column("vote", Integer, nullable=False),  # +1 or -1
    Column("created_at", UTCDateTime, nullable=False),
)


# --- web subscribers, statuses that win over files, used tokens, rate limits (bot.web, bot.roster) ---
web_subscribers = Table(
    "web_subscribers", metadata,
    Column("id", String(200), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),  # lower-cased, for lookups
    Column("name", Text, nullable=False, default=""),
    Column("interests", Text, nullable=False, default="{}"),  # JSON: description, keywords, exclude, topics, authors
    Column("schedule", String(100), nullable=False),
    Column("timezone", String(100), nullable=False),
    Column("max_items", Integer, nullable=False),
    Column("status", String(20), nullable=False),  # unconfirmed | active | paused | unsubscribed
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),  # the latest (re)subscription request
    Column("confirmed_at", UTCDateTime),
)

subscriber_status = Table(
    "subscriber_status", metadata,
    Column("subscriber_id", String(200), primary_key=True),
    Column("status", String(20), nullable=False),  # active | paused | unsubscribed; wins over the file
    Column("updated_at", UTCDateTime, nullable=False),
)

used_tokens = Table(
    "used_tokens", metadata,
    Column("nonce", String(100), primary_key=True),  # a hash of the used link
    Column("kind", String(50), nullable=False),
    Column("used_at", UTCDateTime, nullable=False),
)

rate_events = Table(
    "rate_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(100), nullable=False, index=True),  # a hash: no address or IP is stored
    Column("at", UTCDateTime, nullable=False, index=True),
)


def _now() -> datetime:
    return datetime.now(UTC)


def digest_id(subscriber_id: str, slot: datetime) -> str:
    """The deterministic id of the digest for (subscriber, slot): the basis of its Message-ID."""
    return f"{subscriber_id}.{slot.astimezone(UTC):%Y%m%dT%H%MZ}"


@dataclass(frozen=True, slots=True)
class DigestRow:
    """A digest as the ledger holds it."""

    id: str
    subscriber_id: str
    slot: datetime
    status: str
    channel: str
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    receipt: str
    reason: str
    more: int
    owner: str
    lease_until: datetime | None


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What the store knows of a source's last fetch."""

    name: str
    last_fetch: datetime | None
    last_success: datetime | None
    last_error: str
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class WebSubscriberRow:
    """A subscriber made on the web, as the store holds it (interests as a dict)."""

    id: str
    email: str
    name: str
    interests: dict[str, Any]
    schedule: str
    timezone: str
    max_items: int
    status: str
    created_at: datetime
    updated_at: datetime
    requested_at: datetime
    confirmed_at: datetime | None


def _web_row(r: Any) -> WebSubscriberRow:
    return WebSubscriberRow(
        id=r.id, email=r.email, name=r.name, interests=json.loads(r.interests), schedule=r.schedule,
        timezone=r.timezone, max_items=r.max_items, status=r.status, created_at=r.created_at,
        updated_at=r.updated_at, requested_at=r.requested_at, confirmed_at=r.confirmed_at,
    )


def _entry_row(e: Entry, now: datetime) -> dict[str, Any]:
    return {
        "id": e.id, "title": e.title, "summary": e.summary, "url": e.url,
        "authors": json.dumps(list(e.authors)), "published": e.published or now,
        "source": e.source, "tags": json.dumps(list(e.tags)), "extra": json.dumps(dict(e.extra)),
    }


def _entry(row: Any) -> Entry:
    return Entry(
        id=row.id, title=row.title, summary=row.summary, url=row.url,
        authors=tuple(json.loads(row.authors)), published=row.published, source=row.source,
        tags=tuple(json.loads(row.tags)), extra=json.loads(row.extra),
    )


# Counters that only grow (a stale copy read later must not lower them) and facts about the
# first sighting (a paper first announced "new" stays "new" when arXiv later lists its revision).
_GROWING = ("upvotes", "comments", "github_stars", "version")
_FIRST = ("announce_type",)


def _merged_extra(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    extra = {**old, **new}
    for key in _GROWING:
        a, b = old.get(key), new.get(key)
        if isinstance(a, int | float) and isinstance(b, int | float):
            extra[key] = max(a, b)
    for key in _FIRST:
        if key in old:
            extra[key] = old[key]
    return extra


def _merge(old: Any, new: dict[str, Any]) -> dict[str, Any]:
    """Changes that `new` brings to a stored entry: enrich it, never lose what it had.

    Edits to title, summary and url are taken; the first source and first date stay; authors
    fill in when missing; tags are joined; extras are merged (see `_GROWING` and `_FIRST`).
    """
    changes: dict[str, Any] = {}
    for key in ("title", "summary", "url"):
        if new[key] and new[key] != getattr(old, key):
            changes[key] = new[key]
    if not old.source and new["source"]:
        changes["source"] = new["source"]
    if new["authors"] != "[]" and new["authors"] != old.authors and old.authors == "[]":
        changes["authors"] = new["authors"]
    old_tags, new_tags = json.loads(old.tags), json.loads(new["tags"])
    tags = old_tags + [t for t in new_tags if t not in old_tags]
    if tags != old_tags:
        changes["tags"] = json.dumps(tags)
    old_extra = json.loads(old.extra)
    extra = _merged_extra(old_extra, json.loads(new["extra"]))
    if extra != old_extra:
        changes["extra"] = json.dumps(extra)
    return changes


class Store:
    """The database behind digestbot: entries, fetch state, the delivery ledger and feedback."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = create_engine(url, **_engine_options(url))
        except (SQLAlchemyError, ImportError, ValueError) as e:
            raise StoreError(f"cannot use the database URL {_masked(url)} ({e}); check DIGESTBOT_DATABASE_URL") from e
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # BEGIN IMMEDIATE: take the write lock at the start, so two processes queue on the
            # busy timeout instead of failing when a read transaction turns into a write.
            event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        try:
            self.migrate()
        except BaseException:
            self.engine.dispose()
            raise

    # --- schema -----------------------------------------------------------------------------
    def migrate(self) -> None:
        """Create the tables on first use; refuse a database from a newer digestbot."""
        try:
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "postgresql":
                    # two processes starting together must not both create the tables
                    conn.execute(text("SELECT pg_advisory_xact_lock(7362910)"))
                metadata.create_all(conn)
                version = conn.execute(select(schema_version.c.version)).scalar()
                if version is None:
                    conn.execute(insert(schema_version).values(version=SCHEMA_VERSION))
                elif version > SCHEMA_VERSION:
                    raise StoreError(
                        f"the database {_masked(self.url)} has schema version {version}, newer than this "
                        f"digestbot's {SCHEMA_VERSION}; upgrade digestbot"
                    )
        except OperationalError as e:
            raise StoreError(f"cannot open the database {_masked(self.url)} ({e.orig}); check DIGESTBOT_DATABASE_URL and that the server is running") from e

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction, with driver errors turned into `StoreError`."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as e:
            raise StoreError(f"the database {_masked(self.url)} failed ({e.orig}); check that it is reachable and try again") from e

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    # --- entries ----------------------------------------------------------------------------
    @_again_on_conflict
    def upsert_entries(self, items: Sequence[Entry], now: datetime | None = None) -> tuple[int, int, int]:
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
            for i in range(0, len(ids), 500):
                for r in conn.execute(select(entries).where(entries.c.id.in_(ids[i:i + 500]))):
                    existing[r.id] = r
            fresh = [{**r, "first_seen": now, "updated_at": now} for k, r in rows.items() if k not in existing]
            if fresh:
                conn.execute(insert(entries), fresh)
                new = len(fresh)
            for k, old in existing.items():
                changes = _merge(old, rows[k])
                if changes:
                    conn.execute(update(entries).where(entries.c.id == k).values(**changes, updated_at=now))
                    updated += 1
                else:
                    unchanged += 1
        return new, updated, unchanged

    def entries_since(self, since: datetime) -> list[Entry]:
        """Entries first seen or published at or after `since`, newest first."""
        with self.begin() as conn:
            rows = conn.execute(
                select(entries).where((entries.c.first_seen >= since) | (entries.c.published >= since))
                .order_by(entries.c.published.desc(), entries.c.id)
            )
            return [_entry(r) for r in rows]

    def get_entries(self, ids: Iterable[str]) -> dict[str, Entry]:
        """Stored entries by id."""
        wanted = list(ids)
        found: dict[str, Entry] = {}
        with self.begin() as conn:
            for i in range(0, len(wanted), 500):
                for r in conn.execute(select(entries).where(entries.c.id.in_(wanted[i:i + 500]))):
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
    def save_fetch(self, name: str, state: FetchState | None, error: str = "", counts: dict[str, int] | None = None, now: datetime | None = None) -> None:
        """Record a fetch: its new state on success, its error on failure (the old state is kept)."""
        now = now or _now()
        values: dict[str, Any] = {"last_fetch": now, "last_error": error}
        if state is not None:
            values.update(etag=state.etag, last_modified=state.last_modified, cursor=json.dumps(state.cursor), last_success=now)
        if counts is not None:
            values["last_counts"] = json.dumps(counts)
        with self.begin() as conn:
            done = conn.execute(update(source_state).where(source_state.c.name == name).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(source_state).values(name=name, **values))

    def source_statuses(self) -> list[SourceStatus]:
        """Each source's last fetch, last success, last error and counts."""
        with self.begin() as conn:
            rows = conn.execute(select(source_state).order_by(source_state.c.name)).all()
        return [SourceStatus(r.name, r.last_fetch, r.last_success, r.last_error, json.loads(r.last_counts)) for r in rows]

    # --- the ledger ---------------------------------------------------------------------------
    @retrying
    def delivered(self, subscriber_ids: Iterable[str]) -> dict[str, set[str]]:
        """Entry ids already claimed for each subscriber (sent or in flight)."""
        wanted = list(subscriber_ids)
        out: dict[str, set[str]] = {s: set() for s in wanted}
        with self.begin() as conn:
            for i in range(0, len(wanted), 500):
                q = select(deliveries.c.subscriber_id, deliveries.c.entry_id).where(deliveries.c.subscriber_id.in_(wanted[i:i + 500]))
                for sid, eid in conn.execute(q):
                    out[sid].add(eid)
        return out

    @retrying
    def last_slots(self) -> dict[str, datetime]:
        """Each subscriber's latest digest slot, whatever became of it."""
        with self.begin() as conn:
            q = select(digests.c.subscriber_id, func.max(digests.c.slot)).group_by(digests.c.subscriber_id)
            return {sid: slot.replace(tzinfo=UTC) if slot.tzinfo is None else slot for sid, slot in conn.execute(q)}

    def claim(self, subscriber_id: str, slot: datetime, items: Sequence[DigestItem], channel: str, more: int = 0, owner: str = "", lease: timedelta = timedelta(minutes=5), now: datetime | None = None) -> tuple[str, list[DigestItem]] | None:
        """Claim (subscriber, slot) and its entries in one transaction.

        Returns the digest id and the items actually claimed (an entry another digest claimed
        meanwhile is dropped), or None when this slot was claimed already. A transaction the
        database dropped is run again; if the dropped one had in fact committed, the row it made
        (with this owner) is returned as claimed.
        """
        now = now or _now()
        did = digest_id(subscriber_id, slot)
        for delay in (*RETRY_DELAYS, None):
            try:
                return self._claim(did, subscriber_id, slot, items, channel, more, owner, lease, now)
            except IntegrityError:
                return None
            except StoreError as e:
                if delay is None or not _transient(e):
                    raise
                log.warning("%s; trying again in %.1f s", e, delay)
                time.sleep(delay)
                row = self.get_digest(did)
                if row is not None:
                    if row.owner == owner and owner:
                        return did, self.digest_items(did)
                    return None
        raise AssertionError("unreachable")

    def _claim(self, did: str, subscriber_id: str, slot: datetime, items: Sequence[DigestItem], channel: str, more: int, owner: str, lease: timedelta, now: datetime) -> tuple[str, list[DigestItem]]:
        with self.begin() as conn:
            taken = {
                eid for (eid,) in conn.execute(
                    select(deliveries.c.entry_id).where(
                        and_(deliveries.c.subscriber_id == subscriber_id,
                             deliveries.c.entry_id.in_([i.entry.id for i in items]))
                    )
                )
            } if items else set()
            kept = [i for i in items if i.entry.id not in taken]
            conn.execute(insert(digests).values(
                id=did, subscriber_id=subscriber_id, slot=slot, channel=channel, created_at=now,
                status="pending" if kept else "empty", more=more, owner=owner, lease_until=now + lease,
            ))
            if kept:
                conn.execute(insert(deliveries), [
                    {"subscriber_id": subscriber_id, "entry_id": i.entry.id, "digest_id": did,
                     "position": n, "score": float(i.score), "why": json.dumps(list(i.why)), "topic": i.topic}
                    for n, i in enumerate(kept)
                ])
        return did, kept

    @retrying
    def digest_items(self, did: str) -> list[DigestItem]:
        """The items of a claimed digest, in their order."""
        with self.begin() as conn:
            rows = conn.execute(
                select(deliveries, entries).join(entries, entries.c.id == deliveries.c.entry_id)
                .where(deliveries.c.digest_id == did).order_by(deliveries.c.position)
            ).all()
        return [DigestItem(_entry(r), r.score, tuple(json.loads(r.why)), r.topic) for r in rows]

    @retrying
    def get_digest(self, did: str) -> DigestRow | None:
        """One digest's ledger row."""
        with self.begin() as conn:
            r = conn.execute(select(digests).where(digests.c.id == did)).first()
        return None if r is None else DigestRow(**r._asdict())

    @retrying
    def digests_with_status(self, *statuses: str, subscriber_id: str | None = None) -> list[DigestRow]:
        """Digests in the given states, oldest first."""
        q = select(digests).where(digests.c.status.in_(statuses))
        if subscriber_id is not None:
            q = q.where(digests.c.subscriber_id == subscriber_id)
        with self.begin() as conn:
            return [DigestRow(**r._asdict()) for r in conn.execute(q.order_by(digests.c.slot, digests.c.id))]

    @retrying
    def history(self, subscriber_id: str, limit: int = 20) -> list[DigestRow]:
        """A subscriber's latest digests, newest first."""
        with self.begin() as conn:
            q = select(digests).where(digests.c.subscriber_id == subscriber_id).order_by(digests.c.slot.desc()).limit(limit)
            return [DigestRow(**r._asdict()) for r in conn.execute(q)]

    @retrying
    def take_over(self, did: str, old_owner: str, owner: str, lease: timedelta, now: datetime | None = None) -> bool:
        """Atomically make `owner` the sender of a pending digest still held by `old_owner`.

        (Already held by `owner` counts too, so a retry after a dropped commit still succeeds.)
        """
        now = now or _now()
        with self.begin() as conn:
            done = conn.execute(update(digests).where(and_(
                digests.c.id == did, digests.c.status == "pending", digests.c.owner.in_([old_owner, owner]),
            )).values(owner=owner, lease_until=now + lease))
            return bool(done.rowcount)

    @retrying
    def renew(self, did: str, owner: str, lease: timedelta, now: datetime | None = None) -> bool:
        """Extend `owner`'s lease on a pending digest; False if someone else holds it now."""
        now = now or _now()
        with self.begin() as conn:
            done = conn.execute(update(digests).where(and_(
                digests.c.id == did, digests.c.status == "pending", digests.c.owner == owner,
            )).values(lease_until=now + lease))
            return bool(done.rowcount)

    @retrying
    def release(self, did: str, owner: str, now: datetime | None = None) -> None:
        """Give up a digest that stays pending (owner cleared), so the next run anywhere may retry it."""
        with self.begin() as conn:
            conn.execute(update(digests).where(and_(
                digests.c.id == did, digests.c.status == "pending", digests.c.owner == owner,
            )).values(owner="", lease_until=now or _now()))

    @retrying
    def note_attempt(self, did: str, reason: str) -> int:
        """A transient failure: the digest stays pending; return how many attempts it has had."""
        with self.begin() as conn:
            conn.execute(update(digests).where(digests.c.id == did).values(attempts=digests.c.attempts + 1, reason=reason))
            return int(conn.execute(select(digests.c.attempts).where(digests.c.id == did)).scalar_one())

    @retrying
    def mark_sent(self, did: str, receipt: str, now: datetime | None = None) -> None:
        """Confirm a digest as sent, with the channel's receipt."""
        with self.begin() as conn:
            conn.execute(update(digests).where(digests.c.id == did).values(
                status="sent", sent_at=now or _now(), receipt=receipt, reason="", attempts=digests.c.attempts + 1))

    @retrying
    def mark_failed(self, did: str, reason: str) -> None:
        """A permanent failure: record the reason and free the digest's entries for later digests."""
        with self.begin() as conn:
            conn.execute(delete(deliveries).where(deliveries.c.digest_id == did))
            conn.execute(update(digests).where(digests.c.id == did).values(
                status="failed", reason=reason, attempts=digests.c.attempts + 1))

    def deliveries_of(self, did: str) -> Delivery | None:
        """A digest as a `Delivery` (its ledger row plus its entry ids)."""
        row = self.get_digest(did)
        if row is None:
            return None
        with self.begin() as conn:
            ids = tuple(eid for (eid,) in conn.execute(
                select(deliveries.c.entry_id).where(deliveries.c.digest_id == did).order_by(deliveries.c.position)))
        return Delivery(row.id, row.subscriber_id, row.slot, row.status, row.channel, ids, row.attempts,
                        row.created_at, row.sent_at, row.receipt, row.reason)

    # --- feedback -----------------------------------------------------------------------------
    def record_feedback(self, subscriber_id: str, entry_id: str, vote: int, now: datetime | None = None) -> None:
        """Keep a subscriber's 👍 (+1) or 👎 (-1) on an entry; a new vote replaces the old one."""
        if vote not in (1, -1):
            raise ValueError("vote must be +1 or -1")
        now = now or _now()
        with self.begin() as conn:
            if conn.execute(select(entries.c.id).where(entries.c.id == entry_id)).first() is None:
                raise StoreError(f"no entry {entry_id!r} in the store; give an id that 'digestbot history {subscriber_id}' shows")
            done = conn.execute(update(feedback).where(and_(feedback.c.subscriber_id == subscriber_id, feedback.c.entry_id == entry_id)).values(vote=vote, created_at=now))
            if done.rowcount == 0:
                conn.execute(insert(feedback).values(subscriber_id=subscriber_id, entry_id=entry_id, vote=vote, created_at=now))

    def feedback_for(self, subscriber_ids: Iterable[str]) -> dict[str, list[tuple[Entry, int]]]:
        """Each subscriber's votes with the entries they were cast on."""
        wanted = list(subscriber_ids)
        out: dict[str, list[tuple[Entry, int]]] = {}
        with self.begin() as conn:
            for i in range(0, len(wanted), 500):
                q = (select(feedback.c.subscriber_id, feedback.c.vote, entries)
                     .join(entries, entries.c.id == feedback.c.entry_id)
                     .where(feedback.c.subscriber_id.in_(wanted[i:i + 500]))
                     .order_by(feedback.c.created_at))
                for r in conn.execute(q):
                    out.setdefault(r.subscriber_id, []).append((_entry(r), r.vote))
        return out

    # --- web subscribers, statuses that win over files, used tokens, rate limits ---------------
    # Added for bot.web and bot.roster; nothing above this line depends on it.
    def web_subscriber(self, sid: str) -> WebSubscriberRow | None:
        """One web subscriber by id."""
        with self.begin() as conn:
            r = conn.execute(select(web_subscribers).where(web_subscribers.c.id == sid)).first()
        return None if r is None else _web_row(r)

    def web_subscriber_by_email(self, email: str) -> WebSubscriberRow | None:
        """The web subscriber with this address (compared without case), if any."""
        with self.begin() as conn:
            r = conn.execute(select(web_subscribers).where(web_subscribers.c.email_key == email.strip().lower())).first()
        return None if r is None else _web_row(r)

    def web_subscribers(self, *statuses: str) -> list[WebSubscriberRow]:
        """Web subscribers in the given states (all when none given), oldest first."""
        q = select(web_subscribers)
        if statuses:
            q = q.where(web_subscribers.c.status.in_(statuses))
        with self.begin() as conn:
            return [_web_row(r) for r in conn.execute(q.order_by(web_subscribers.c.created_at, web_subscribers.c.id))]

    def request_web_subscription(self, new_id: str, email: str, name: str, interests: dict[str, Any], schedule: str, timezone: str, max_items: int, now: datetime | None = None) -> WebSubscriberRow:
        """A subscription request: a new unconfirmed row, or an unconfirmed/unsubscribed one renewed.

        An active or paused subscriber is left exactly as it is (a stranger must not change it);
        the caller tells the two cases apart by the returned row's status.
        """
        now = now or _now()
        key = email.strip().lower()
        fields = {"email": email.strip(), "name": name, "interests": json.dumps(interests), "schedule": schedule,
                  "timezone": timezone, "max_items": max_items, "status": "unconfirmed", "updated_at": now}
        for _attempt in range(2):  # a concurrent insert of the same address: read it on the second pass
            try:
                with self.begin() as conn:
                    r = conn.execute(select(web_subscribers).where(web_subscribers.c.email_key == key)).first()
                    if r is None:
                        conn.execute(insert(web_subscribers).values(id=new_id, email_key=key, created_at=now, requested_at=now, **fields))
                        sid = new_id
                    else:
                        sid = r.id
                        # requested_at moves only when a subscriber who left asks again: confirmation
                        # links issued before they left must not bring them back.
                        if r.status == "unconfirmed":
                            conn.execute(update(web_subscribers).where(web_subscribers.c.id == sid).values(**fields))
                        elif r.status == "unsubscribed":
                            conn.execute(update(web_subscribers).where(web_subscribers.c.id == sid).values(**fields, requested_at=now))
                    found = conn.execute(select(web_subscribers).where(web_subscribers.c.id == sid)).one()
                return _web_row(found)
            except IntegrityError:
                continue
        raise StoreError(f"could not record the subscription request for id {new_id!r}; try again")

    def update_web_subscriber(self, sid: str, *, name: str, interests: dict[str, Any], schedule: str, timezone: str, max_items: int, now: datetime | None = None) -> bool:
        """Change a web subscriber's interests and schedule; False if there is no such subscriber."""
        with self.begin() as conn:
            done = conn.execute(update(web_subscribers).where(web_subscribers.c.id == sid).values(
                name=name, interests=json.dumps(interests), schedule=schedule, timezone=timezone,
                max_items=max_items, updated_at=now or _now()))
            return bool(done.rowcount)

    def set_web_status(self, sid: str, status: str, now: datetime | None = None, *, only_from: Sequence[str] | None = None) -> bool:
        """Set a web subscriber's status (only if it is in `only_from`, when given); True if changed."""
        now = now or _now()
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status == "active":
            values["confirmed_at"] = func.coalesce(web_subscribers.c.confirmed_at, now)
        q = update(web_subscribers).where(web_subscribers.c.id == sid)
        if only_from is not None:
            q = q.where(web_subscribers.c.status.in_(list(only_from)))
        with self.begin() as conn:
            return bool(conn.execute(q.values(**values)).rowcount)

    def set_subscriber_status(self, sid: str, status: str, now: datetime | None = None) -> None:
        """Pause, resume or unsubscribe a subscriber defined by a file; this wins over the file."""
        now = now or _now()
        with self.begin() as conn:
            done = conn.execute(update(subscriber_status).where(subscriber_status.c.subscriber_id == sid).values(status=status, updated_at=now))
            if done.rowcount == 0:
                conn.execute(insert(subscriber_status).values(subscriber_id=sid, status=status, updated_at=now))

    def subscriber_statuses(self) -> dict[str, str]:
        """Every status recorded for file-defined subscribers, by subscriber id."""
        with self.begin() as conn:
            return {sid: st for sid, st in conn.execute(select(subscriber_status.c.subscriber_id, subscriber_status.c.status))}

    def use_token(self, nonce: str, kind: str, now: datetime | None = None) -> bool:
        """Mark a single-use link (by `nonce`, e.g. a hash of its token) as used; False if it was before."""
        try:
            with self.begin() as conn:
                conn.execute(insert(used_tokens).values(nonce=nonce, kind=kind, used_at=now or _now()))
        except IntegrityError:
            return False
        return True

    def hit_rate(self, key: str, window: timedelta, limit: int, now: datetime | None = None) -> bool:
        """Count one event under `key` if fewer than `limit` happened in `window`; False when over."""
        now = now or _now()
        with self.begin() as conn:
            conn.execute(delete(rate_events).where(rate_events.c.at < now - timedelta(days=1)))
            seen = conn.execute(select(func.count()).select_from(rate_events).where(
                and_(rate_events.c.key == key, rate_events.c.at > now - window))).scalar_one()
            if seen >= limit:
                return False
            conn.execute(insert(rate_events).values(key=key, at=now))
        return True

def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # timeout is sqlite3's busy timeout: wait for a writer instead of failing at once.
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN itself
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _masked(url: str) -> str:
    from .config import mask_url

    return mask_url(url)


def lookback(now: datetime, days: int) -> datetime:
    """The earliest time an entry may have to be offered in a digest."""
    return now - timedelta(days=days)
