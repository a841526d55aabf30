"""Web subscribers, statuses that win over subscriber files, used single-use links and rate limits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..addresses import normalize
from ..errors import StoreError
from ._base import StoreBase, _now
from ._schema import rate_events, subscriber_status, used_tokens, web_subscribers


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


@dataclass(frozen=True, slots=True)
class SubscriberMark:
    """A pause, resume or unsubscribe recorded for a subscriber defined by a file.

    It wins over the file only while the file names `address`; None: a mark made without one
    (before revision 0002, or by a caller that did not know it), which applies to any address.
    """

    subscriber_id: str
    status: str  # active | paused | unsubscribed
    updated_at: datetime
    address: str | None

    def applies_to(self, address: str) -> bool:
        """Whether the mark is about this address (compared without case and outer spaces)."""
        return self.address is None or self.address.strip().lower() == address.strip().lower()


_FIELDS = [f.name for f in fields(WebSubscriberRow)]  # columns of web_subscribers, in order


def _row_of(r: tuple[Any, ...], interests: dict[str, Any] | None) -> WebSubscriberRow:
    """A row selected as `_FIELDS`, by position; `interests` decoded already (None: not yet)."""
    sid, email, name, text, schedule, timezone, max_items, status, *times = r
    created, updated, requested, confirmed = times
    return WebSubscriberRow(
        sid,
        email,
        name,
        json.loads(text) if interests is None else interests,
        schedule,
        timezone,
        max_items,
        status,
        created,
        updated,
        requested,
        confirmed,
    )


def _web_row(r: Any) -> WebSubscriberRow:
    return WebSubscriberRow(
        id=r.id,
        email=r.email,
        name=r.name,
        interests=json.loads(r.interests),
        schedule=r.schedule,
        timezone=r.timezone,
        max_items=r.max_items,
        status=r.status,
        created_at=r.created_at,
        updated_at=r.updated_at,
        requested_at=r.requested_at,
        confirmed_at=r.confirmed_at,
    )


def _decode_all(texts: list[str]) -> list[dict[str, Any] | None]:
    """Each row's interests JSON decoded, in one `json.loads` of them all (100,000 rows: one
    call, not 100,000); None for a row to decode on its own — every row, when the joined
    text is not exactly one object per row (a row that is not a single JSON object)."""
    try:
        found = json.loads("[" + ",".join(texts) + "]") if texts else []
    except ValueError:
        found = None
    if found is None or len(found) != len(texts) or not all(isinstance(i, dict) for i in found):
        return [None] * len(texts)
    return list(found)


class WebRecords(StoreBase):
    """What bot.web and bot.roster keep: web subscribers, statuses, used tokens, rate events."""

    def web_subscriber(self, sid: str) -> WebSubscriberRow | None:
        """One web subscriber by id."""
        with self.begin() as conn:
            r = conn.execute(select(web_subscribers).where(web_subscribers.c.id == sid)).first()
        return None if r is None else _web_row(r)

    def web_subscriber_by_email(self, email: str) -> WebSubscriberRow | None:
        """The web subscriber with this address (compared without case), if any."""
        with self.begin() as conn:
            r = conn.execute(
                select(web_subscribers).where(
                    web_subscribers.c.email_key
                    == (normalize(email.strip(), dotted=False) or email.strip()).lower()
                )
            ).first()
        return None if r is None else _web_row(r)

    def web_subscribers(self, *statuses: str) -> list[WebSubscriberRow]:
        """Web subscribers in the given states (all when none given), oldest first."""
        # The row's fields in order, read by position: 100,000 rows, a dozen fields each.
        q = select(*(web_subscribers.c[name] for name in _FIELDS))
        if statuses:
            q = q.where(web_subscribers.c.status.in_(statuses))
        with self.begin() as conn:
            rows = conn.execute(
                q.order_by(web_subscribers.c.created_at, web_subscribers.c.id)
            ).all()
        decoded = _decode_all([r[3] for r in rows])
        return [_row_of(tuple(r), i) for r, i in zip(rows, decoded, strict=True)]

    def web_subscribers_changed(self) -> tuple[int, datetime | None]:
        """(how many web subscribers, their latest `updated_at`): changes with every web edit.

        One aggregate query, for the scheduler's watcher (which must not read every row each time).
        """
        with self.begin() as conn:
            count, latest = conn.execute(
                select(func.count(), func.max(web_subscribers.c.updated_at))
            ).one()
        return int(count), latest

    def request_web_subscription(
        self,
        new_id: str,
        email: str,
        name: str,
        interests: dict[str, Any],
        schedule: str,
        timezone: str,
        max_items: int,
        now: datetime | None = None,
    ) -> WebSubscriberRow:
        """A subscription request: a new unconfirmed row, or an unsubscribed one renewed.

        Keyed on the normalized address (`bot.addresses.normalize`, compared without case). An
        active, paused or unconfirmed subscriber is left exactly as it is: a stranger posting the
        address again must not change it (the confirmation link carries the settings its request
        chose, and confirming applies those). The caller tells the cases apart by the status.
        """
        now = now or _now()
        address = normalize(email.strip(), dotted=False) or email.strip()
        key = address.lower()
        fields = {
            "email": address,
            "name": name,
            "interests": json.dumps(interests),
            "schedule": schedule,
            "timezone": timezone,
            "max_items": max_items,
            "status": "unconfirmed",
            "updated_at": now,
        }
        for _attempt in range(2):  # a concurrent insert of the same address: read it again
            try:
                with self.begin() as conn:
                    r = conn.execute(
                        select(web_subscribers).where(web_subscribers.c.email_key == key)
                    ).first()
                    if r is None:
                        conn.execute(
                            insert(web_subscribers).values(
                                id=new_id, email_key=key, created_at=now, requested_at=now, **fields
                            )
                        )
                        sid = new_id
                    else:
                        sid = r.id
                        # requested_at moves only when a subscriber who left asks again:
                        # confirmation links issued before they left must not bring them back.
                        if r.status == "unsubscribed":
                            conn.execute(
                                update(web_subscribers)
                                .where(web_subscribers.c.id == sid)
                                .values(**fields, requested_at=now)
                            )
                    found = conn.execute(
                        select(web_subscribers).where(web_subscribers.c.id == sid)
                    ).one()
                return _web_row(found)
            except IntegrityError:
                continue
        raise StoreError(f"could not record the subscription request for id {new_id!r}; try again")

    def update_web_subscriber(
        self,
        sid: str,
        *,
        name: str,
        interests: dict[str, Any],
        schedule: str,
        timezone: str,
        max_items: int,
        now: datetime | None = None,
    ) -> bool:
        """Change a web subscriber's interests and schedule; False if there is no such subscriber."""
        with self.begin() as conn:
            done = conn.execute(
                update(web_subscribers)
                .where(web_subscribers.c.id == sid)
                .values(
                    name=name,
                    interests=json.dumps(interests),
                    schedule=schedule,
                    timezone=timezone,
                    max_items=max_items,
                    updated_at=now or _now(),
                )
            )
            return bool(done.rowcount)

    def confirm_web_subscriber(
        self,
        sid: str,
        requested_by: datetime,
        *,
        name: str,
        interests: dict[str, Any],
        schedule: str,
        timezone: str,
        max_items: int,
        now: datetime | None = None,
    ) -> bool:
        """Make an unconfirmed subscriber active with the settings its confirmation link carries.

        One statement: only while still unconfirmed and only if the request was made at or
        before `requested_by` (the second after the link was issued); False otherwise.
        """
        now = now or _now()
        with self.begin() as conn:
            done = conn.execute(
                update(web_subscribers)
                .where(
                    web_subscribers.c.id == sid,
                    web_subscribers.c.status == "unconfirmed",
                    web_subscribers.c.requested_at < requested_by,
                )
                .values(
                    name=name,
                    interests=json.dumps(interests),
                    schedule=schedule,
                    timezone=timezone,
                    max_items=max_items,
                    status="active",
                    updated_at=now,
                    confirmed_at=func.coalesce(web_subscribers.c.confirmed_at, now),
                )
            )
            return bool(done.rowcount)

    def set_web_status(
        self,
        sid: str,
        status: str,
        now: datetime | None = None,
        *,
        only_from: Sequence[str] | None = None,
    ) -> bool:
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

    def set_subscriber_status(
        self, sid: str, status: str, now: datetime | None = None, *, address: str | None = None
    ) -> None:
        """Pause, resume or unsubscribe a subscriber defined by a file; this wins over the file
        while the file names `address` (None: not known here; bot.roster ties the mark to the
        file's address when it next reads it)."""
        now = now or _now()
        with self.begin() as conn:
            done = conn.execute(
                update(subscriber_status)
                .where(subscriber_status.c.subscriber_id == sid)
                .values(status=status, updated_at=now, address=address)
            )
            if done.rowcount == 0:
                conn.execute(
                    insert(subscriber_status).values(
                        subscriber_id=sid, status=status, updated_at=now, address=address
                    )
                )

    def subscriber_statuses(self) -> dict[str, str]:
        """Every status recorded for file-defined subscribers, by subscriber id (whatever address
        it was made for: `subscriber_marks` has that)."""
        return {sid: mark.status for sid, mark in self.subscriber_marks().items()}

    def subscriber_marks(self) -> dict[str, SubscriberMark]:
        """Every mark recorded for file-defined subscribers, by subscriber id."""
        with self.begin() as conn:
            return {
                r.subscriber_id: SubscriberMark(r.subscriber_id, r.status, r.updated_at, r.address)
                for r in conn.execute(select(subscriber_status))
            }

    def tie_subscriber_mark(self, sid: str, address: str) -> bool:
        """Tie a mark made without an address to `address`; False if it has one already (or
        there is no mark)."""
        with self.begin() as conn:
            done = conn.execute(
                update(subscriber_status)
                .where(
                    and_(
                        subscriber_status.c.subscriber_id == sid,
                        subscriber_status.c.address.is_(None),
                    )
                )
                .values(address=address)
            )
            return bool(done.rowcount)

    def use_token(self, nonce: str, kind: str, now: datetime | None = None) -> bool:
        """Mark a single-use link (by `nonce`, e.g. a hash of its token) as used; False if it was before."""
        try:
            with self.begin() as conn:
                conn.execute(
                    insert(used_tokens).values(nonce=nonce, kind=kind, used_at=now or _now())
                )
        except IntegrityError:
            return False
        return True

    def hit_rate(
        self, key: str, window: timedelta, limit: int, now: datetime | None = None
    ) -> bool:
        """Count one event under `key` if fewer than `limit` happened in `window`; False when over.

        Atomic: concurrent calls for one key queue on a lock (SQLite: BEGIN IMMEDIATE, the
        store's; PostgreSQL: a transaction-scoped advisory lock on the key's hash), so `limit`
        holds however many requests race.
        """
        now = now or _now()
        with self.begin() as conn:
            if conn.dialect.name == "postgresql":
                lock = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
                conn.execute(select(func.pg_advisory_xact_lock(lock)))
            # Old events go; never any inside the window (a window longer than a day keeps them).
            conn.execute(
                delete(rate_events).where(rate_events.c.at < now - max(window, timedelta(days=1)))
            )
            seen = conn.execute(
                select(func.count())
                .select_from(rate_events)
                .where(and_(rate_events.c.key == key, rate_events.c.at > now - window))
            ).scalar_one()
            if seen >= limit:
                return False
            conn.execute(insert(rate_events).values(key=key, at=now))
        return True
