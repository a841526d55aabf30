"""The ledger's rows as read: `DigestRow`, digest ids, and the queries on digests and deliveries."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Row, String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from ..models import Delivery, DigestItem, DigestStatus
from ._base import StoreBase, _batches, retrying
from ._entries import _entry
from ._schema import deliveries, digests, entries

_SLOT = re.compile(r"\.\d{8}T\d{4}Z")  # what `digest_id` puts after the subscriber id


def digest_id(subscriber_id: str, slot: datetime) -> str:
    """The deterministic id of the digest for (subscriber, slot): the basis of its Message-ID."""
    return f"{subscriber_id}.{slot.astimezone(UTC):%Y%m%dT%H%MZ}"


def is_digest_of(did: str, subscriber_id: str) -> bool:
    """Whether `did` has the shape of one of `subscriber_id`'s digest ids (`digest_id`)."""
    return did.startswith(subscriber_id) and _SLOT.fullmatch(did, len(subscriber_id)) is not None


@dataclass(frozen=True, slots=True)
class DigestRow:
    """A digest as the ledger holds it."""

    id: str
    subscriber_id: str
    slot: datetime
    status: DigestStatus
    channel: str
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    receipt: str
    reason: str
    more: int
    owner: str
    lease_until: datetime | None


def id_filters(conn: Connection, column: Column[str], ids: list[str]) -> list[ColumnElement[bool]]:
    """WHERE clauses that together cover `ids`: one `= ANY(array)` on PostgreSQL (a single
    parameter, however many ids), else `IN (...)` lists of at most BATCH ids each."""
    if conn.dialect.name == "postgresql":
        return [column == any_(bindparam("ids", ids, type_=ARRAY(String)))] if ids else []
    return [column.in_(batch) for batch in _batches(ids)]


def _row(r: Row[Any]) -> DigestRow:
    """A `digests` row as a `DigestRow`, its status as the enum."""
    return DigestRow(**{**r._asdict(), "status": DigestStatus(r.status)})


class DigestReads(StoreBase):
    """What the ledger holds: digests by id, state and subscriber, their items, who got what."""

    @retrying
    def delivered(self, subscriber_ids: Iterable[str]) -> dict[str, set[str]]:
        """Entry ids already claimed for each subscriber (sent or in flight)."""
        wanted = list(subscriber_ids)
        out: dict[str, set[str]] = {s: set() for s in wanted}
        with self.begin() as conn:
            for where in id_filters(conn, deliveries.c.subscriber_id, wanted):
                q = select(deliveries.c.subscriber_id, deliveries.c.entry_id).where(where)
                for sid, eid in conn.execute(q):
                    out[sid].add(eid)
        return out

    @retrying
    def last_slots(self) -> dict[str, datetime]:
        """Each subscriber's latest digest slot, whatever became of it."""
        with self.begin() as conn:
            q = select(digests.c.subscriber_id, func.max(digests.c.slot)).group_by(
                digests.c.subscriber_id
            )
            return {
                sid: slot.replace(tzinfo=UTC) if slot.tzinfo is None else slot
                for sid, slot in conn.execute(q)
            }

    def digest_items(self, did: str) -> list[DigestItem]:
        """The items of a claimed digest, in their order."""
        return self.digest_items_of([did])[did]

    def digest_items_of(self, digest_ids: Iterable[str]) -> dict[str, list[DigestItem]]:
        """The items of several digests in one read (a query per batch of ids), each in order."""
        wanted = list(digest_ids)
        out: dict[str, list[DigestItem]] = {did: [] for did in wanted}
        with self.begin() as conn:
            for where in id_filters(conn, deliveries.c.digest_id, wanted):
                rows = conn.execute(
                    select(deliveries, entries)
                    .join(entries, entries.c.id == deliveries.c.entry_id)
                    .where(where)
                    .order_by(deliveries.c.digest_id, deliveries.c.position)
                )
                for r in rows:
                    item = DigestItem(_entry(r), r.score, tuple(json.loads(r.why)), r.topic)
                    out[r.digest_id].append(item)
        return out

    @retrying
    def get_digest(self, did: str) -> DigestRow | None:
        """One digest's ledger row."""
        with self.begin() as conn:
            r = conn.execute(select(digests).where(digests.c.id == did)).first()
        return None if r is None else _row(r)

    @retrying
    def digests_with_status(
        self, *statuses: str, subscriber_id: str | None = None
    ) -> list[DigestRow]:
        """Digests in the given states (`DigestStatus` values), oldest first."""
        q = select(digests).where(digests.c.status.in_(statuses))
        if subscriber_id is not None:
            q = q.where(digests.c.subscriber_id == subscriber_id)
        with self.begin() as conn:
            return [_row(r) for r in conn.execute(q.order_by(digests.c.slot, digests.c.id))]

    @retrying
    def history(
        self, subscriber_id: str, limit: int = 20, statuses: Iterable[str] = ()
    ) -> list[DigestRow]:
        """A subscriber's latest digests, newest first: all of them, or those in `statuses`."""
        with self.begin() as conn:
            q = select(digests).where(digests.c.subscriber_id == subscriber_id)
            if wanted := list(statuses):
                q = q.where(digests.c.status.in_(wanted))
            q = q.order_by(digests.c.slot.desc()).limit(limit)
            return [_row(r) for r in conn.execute(q)]

    def deliveries_of(self, did: str) -> Delivery | None:
        """A digest as a `Delivery` (its ledger row plus its entry ids)."""
        row = self.get_digest(did)
        if row is None:
            return None
        with self.begin() as conn:
            ids = tuple(
                eid
                for (eid,) in conn.execute(
                    select(deliveries.c.entry_id)
                    .where(deliveries.c.digest_id == did)
                    .order_by(deliveries.c.position)
                )
            )
        return Delivery(
            row.id,
            row.subscriber_id,
            row.slot,
            row.status,
            row.channel,
            ids,
            row.attempts,
            row.created_at,
            row.sent_at,
            row.receipt,
            row.reason,
        )
