"""The delivery ledger: digests and their deliveries (claim, lease, confirm), history and feedback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import StoreError
from ..models import Claim, Claimed, Delivery, DigestItem, DigestStatus, Entry
from ._base import RETRY_DELAYS, StoreBase, _batches, _now, _transient, log, retrying
from ._entries import _entry
from ._schema import deliveries, digests, entries, feedback


def digest_id(subscriber_id: str, slot: datetime) -> str:
    """The deterministic id of the digest for (subscriber, slot): the basis of its Message-ID."""
    return f"{subscriber_id}.{slot.astimezone(UTC):%Y%m%dT%H%MZ}"


# The statements of the hot path (claim → confirm), built once: building a statement costs more
# than SQLite takes to run it, and a built one's compiled form is found in the engine's cache.
_TAKEN = select(deliveries.c.entry_id).where(
    and_(
        deliveries.c.subscriber_id == bindparam("sid"),
        deliveries.c.entry_id.in_(bindparam("eids", expanding=True)),
    )
)
_NEW_DIGEST = insert(digests)
_NEW_DELIVERIES = insert(deliveries)
_SENT = (
    update(digests)
    .where(digests.c.id == bindparam("did"))
    .values(
        status=DigestStatus.SENT,
        sent_at=bindparam("at"),
        receipt=bindparam("rcpt"),
        reason="",
        attempts=digests.c.attempts + 1,
    )
)


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


def _row(r: Row[Any]) -> DigestRow:
    """A `digests` row as a `DigestRow`, its status as the enum."""
    return DigestRow(**{**r._asdict(), "status": DigestStatus(r.status)})


class Ledger(StoreBase):
    """Digests and deliveries: never twice, never lost; and the votes cast on delivered entries."""

    @retrying
    def delivered(self, subscriber_ids: Iterable[str]) -> dict[str, set[str]]:
        """Entry ids already claimed for each subscriber (sent or in flight)."""
        wanted = list(subscriber_ids)
        out: dict[str, set[str]] = {s: set() for s in wanted}
        with self.begin() as conn:
            for batch in _batches(wanted):
                q = select(deliveries.c.subscriber_id, deliveries.c.entry_id).where(
                    deliveries.c.subscriber_id.in_(batch)
                )
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

    def claim(
        self,
        subscriber_id: str,
        slot: datetime,
        items: Sequence[DigestItem],
        channel: str,
        more: int = 0,
        owner: str = "",
        lease: timedelta = timedelta(minutes=5),
        now: datetime | None = None,
    ) -> Claimed | None:
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
                try:
                    return self._claim(
                        did,
                        subscriber_id,
                        slot,
                        items,
                        channel,
                        more,
                        owner,
                        lease,
                        now,
                        look=False,
                    )
                except IntegrityError:
                    # The slot is claimed, or an entry was claimed by another digest since it was
                    # chosen (rare: the planner skips delivered entries): look, and keep the rest.
                    return self._claim(
                        did, subscriber_id, slot, items, channel, more, owner, lease, now, look=True
                    )
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
                        return Claimed(did, tuple(self.digest_items(did)))
                    return None
        raise AssertionError("unreachable")

    def _claim(
        self,
        did: str,
        subscriber_id: str,
        slot: datetime,
        items: Sequence[DigestItem],
        channel: str,
        more: int,
        owner: str,
        lease: timedelta,
        now: datetime,
        look: bool,
    ) -> Claimed:
        """One try at the claim's transaction; `look`: first drop the entries claimed already."""
        with self.begin() as conn:
            taken: set[str] = set()
            if look and items:
                taken = {
                    eid
                    for (eid,) in conn.execute(
                        _TAKEN, {"sid": subscriber_id, "eids": [i.entry.id for i in items]}
                    )
                }
            kept = [i for i in items if i.entry.id not in taken]
            conn.execute(
                _NEW_DIGEST,
                {
                    "id": did,
                    "subscriber_id": subscriber_id,
                    "slot": slot,
                    "channel": channel,
                    "created_at": now,
                    "status": DigestStatus.PENDING if kept else DigestStatus.EMPTY,
                    "more": more,
                    "owner": owner,
                    "lease_until": now + lease,
                },
            )
            if kept:
                conn.execute(
                    _NEW_DELIVERIES,
                    [
                        {
                            "subscriber_id": subscriber_id,
                            "entry_id": i.entry.id,
                            "digest_id": did,
                            "position": n,
                            "score": float(i.score),
                            "why": json.dumps(list(i.why)),
                            "topic": i.topic,
                        }
                        for n, i in enumerate(kept)
                    ],
                )
        return Claimed(did, tuple(kept))

    @retrying
    def claim_many(
        self,
        claims: Sequence[Claim],
        owner: str = "",
        lease: timedelta = timedelta(minutes=5),
        now: datetime | None = None,
    ) -> list[Claimed | None]:
        """`claim` for many digests at once, in one transaction.

        The same results as calling `claim` for each; if another process claims one of them
        meanwhile, the batch falls back to one `claim` per digest.
        """
        now = now or _now()
        ids = [digest_id(c.subscriber_id, c.slot) for c in claims]
        try:
            with self.begin() as conn:
                seen = {
                    did
                    for (did,) in conn.execute(select(digests.c.id).where(digests.c.id.in_(ids)))
                }
                subs = {c.subscriber_id for c in claims}
                wanted = {i.entry.id for c in claims for i in c.items}
                taken: set[tuple[str, str]] = (
                    {
                        (r[0], r[1])
                        for r in conn.execute(
                            select(deliveries.c.subscriber_id, deliveries.c.entry_id).where(
                                and_(
                                    deliveries.c.subscriber_id.in_(subs),
                                    deliveries.c.entry_id.in_(wanted),
                                )
                            )
                        )
                    }
                    if wanted
                    else set()
                )
                out: list[Claimed | None] = []
                rows: list[dict[str, Any]] = []
                lines: list[dict[str, Any]] = []
                for did, c in zip(ids, claims):
                    if did in seen:
                        out.append(None)
                        continue
                    seen.add(did)
                    sub = c.subscriber_id
                    kept = [i for i in c.items if (sub, i.entry.id) not in taken]
                    taken.update((sub, i.entry.id) for i in kept)
                    rows.append(
                        {
                            "id": did,
                            "subscriber_id": sub,
                            "slot": c.slot,
                            "channel": c.channel,
                            "created_at": now,
                            "status": DigestStatus.PENDING if kept else DigestStatus.EMPTY,
                            "more": c.more,
                            "owner": owner,
                            "lease_until": now + lease,
                            "sent_at": None,
                            "attempts": 0,
                            "receipt": "",
                            "reason": "",
                        }
                    )
                    lines.extend(
                        {
                            "subscriber_id": sub,
                            "entry_id": i.entry.id,
                            "digest_id": did,
                            "position": n,
                            "score": float(i.score),
                            "why": json.dumps(list(i.why)),
                            "topic": i.topic,
                        }
                        for n, i in enumerate(kept)
                    )
                    out.append(Claimed(did, tuple(kept)))
                if rows:
                    conn.execute(insert(digests), rows)
                if lines:
                    conn.execute(insert(deliveries), lines)
            return out
        except IntegrityError:  # another process claimed one meanwhile: settle each on its own
            return [
                self.claim(c.subscriber_id, c.slot, c.items, c.channel, c.more, owner, lease, now)
                for c in claims
            ]

    def digest_items(self, did: str) -> list[DigestItem]:
        """The items of a claimed digest, in their order."""
        with self.begin() as conn:
            rows = conn.execute(
                select(deliveries, entries)
                .join(entries, entries.c.id == deliveries.c.entry_id)
                .where(deliveries.c.digest_id == did)
                .order_by(deliveries.c.position)
            ).all()
        return [DigestItem(_entry(r), r.score, tuple(json.loads(r.why)), r.topic) for r in rows]

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
    def history(self, subscriber_id: str, limit: int = 20) -> list[DigestRow]:
        """A subscriber's latest digests, newest first."""
        with self.begin() as conn:
            q = (
                select(digests)
                .where(digests.c.subscriber_id == subscriber_id)
                .order_by(digests.c.slot.desc())
                .limit(limit)
            )
            return [_row(r) for r in conn.execute(q)]

    @retrying
    def take_over(
        self, did: str, old_owner: str, owner: str, lease: timedelta, now: datetime | None = None
    ) -> bool:
        """Atomically make `owner` the sender of a pending digest still held by `old_owner`.

        (Already held by `owner` counts too, so a retry after a dropped commit still succeeds.)
        """
        now = now or _now()
        with self.begin() as conn:
            done = conn.execute(
                update(digests)
                .where(
                    and_(
                        digests.c.id == did,
                        digests.c.status == DigestStatus.PENDING,
                        digests.c.owner.in_([old_owner, owner]),
                    )
                )
                .values(owner=owner, lease_until=now + lease)
            )
            return bool(done.rowcount)

    @retrying
    def renew(self, did: str, owner: str, lease: timedelta, now: datetime | None = None) -> bool:
        """Extend `owner`'s lease on a pending digest; False if someone else holds it now."""
        now = now or _now()
        with self.begin() as conn:
            done = conn.execute(
                update(digests)
                .where(
                    and_(
                        digests.c.id == did,
                        digests.c.status == DigestStatus.PENDING,
                        digests.c.owner == owner,
                    )
                )
                .values(lease_until=now + lease)
            )
            return bool(done.rowcount)

    @retrying
    def release(self, did: str, owner: str, now: datetime | None = None) -> None:
        """Give up a digest that stays pending (owner cleared), so the next run anywhere may retry it."""
        with self.begin() as conn:
            conn.execute(
                update(digests)
                .where(
                    and_(
                        digests.c.id == did,
                        digests.c.status == DigestStatus.PENDING,
                        digests.c.owner == owner,
                    )
                )
                .values(owner="", lease_until=now or _now())
            )

    @retrying
    def unclaim(self, did: str, owner: str) -> bool:
        """Undo the claim of a digest never tried (pending, held by `owner`, no attempt): as if never claimed."""
        untried = and_(
            digests.c.id == did,
            digests.c.status == DigestStatus.PENDING,
            digests.c.owner == owner,
            digests.c.attempts == 0,
        )
        with self.begin() as conn:
            if conn.execute(select(digests.c.id).where(untried)).first() is None:
                return False
            conn.execute(delete(deliveries).where(deliveries.c.digest_id == did))
            return bool(conn.execute(delete(digests).where(untried)).rowcount)

    @retrying
    def note_attempt(self, did: str, reason: str) -> int:
        """A transient failure: the digest stays pending; return how many attempts it has had."""
        with self.begin() as conn:
            conn.execute(
                update(digests)
                .where(digests.c.id == did)
                .values(attempts=digests.c.attempts + 1, reason=reason)
            )
            return int(
                conn.execute(select(digests.c.attempts).where(digests.c.id == did)).scalar_one()
            )

    @retrying
    def mark_sent(self, did: str, receipt: str, now: datetime | None = None) -> None:
        """Confirm a digest as sent, with the channel's receipt."""
        with self.begin() as conn:
            conn.execute(_SENT, {"did": did, "at": now or _now(), "rcpt": receipt})

    @retrying
    def mark_failed(self, did: str, reason: str) -> None:
        """A permanent failure: record the reason and free the digest's entries for later digests."""
        with self.begin() as conn:
            conn.execute(delete(deliveries).where(deliveries.c.digest_id == did))
            conn.execute(
                update(digests)
                .where(digests.c.id == did)
                .values(status=DigestStatus.FAILED, reason=reason, attempts=digests.c.attempts + 1)
            )

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

    # --- feedback -----------------------------------------------------------------------------
    def record_feedback(
        self, subscriber_id: str, entry_id: str, vote: int, now: datetime | None = None
    ) -> None:
        """Keep a subscriber's 👍 (+1) or 👎 (-1) on an entry; a new vote replaces the old one."""
        if vote not in (1, -1):
            raise ValueError("vote must be +1 or -1")
        now = now or _now()
        with self.begin() as conn:
            if conn.execute(select(entries.c.id).where(entries.c.id == entry_id)).first() is None:
                raise StoreError(
                    f"no entry {entry_id!r} in the store; give an id that 'digestbot history {subscriber_id}' shows"
                )
            done = conn.execute(
                update(feedback)
                .where(
                    and_(feedback.c.subscriber_id == subscriber_id, feedback.c.entry_id == entry_id)
                )
                .values(vote=vote, created_at=now)
            )
            if done.rowcount == 0:
                conn.execute(
                    insert(feedback).values(
                        subscriber_id=subscriber_id, entry_id=entry_id, vote=vote, created_at=now
                    )
                )

    def feedback_for(self, subscriber_ids: Iterable[str]) -> dict[str, list[tuple[Entry, int]]]:
        """Each subscriber's votes with the entries they were cast on."""
        wanted = list(subscriber_ids)
        out: dict[str, list[tuple[Entry, int]]] = {}
        with self.begin() as conn:
            for batch in _batches(wanted):
                q = (
                    select(feedback.c.subscriber_id, feedback.c.vote, entries)
                    .join(entries, entries.c.id == feedback.c.entry_id)
                    .where(feedback.c.subscriber_id.in_(batch))
                    .order_by(feedback.c.created_at)
                )
                for r in conn.execute(q):
                    out.setdefault(r.subscriber_id, []).append((_entry(r), r.vote))
        return out
