"""Claims and leases: a digest and its entries taken in one transaction, held by one sender
(its owner token and lease), taken over, released, or given back as if never claimed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..models import Claim, Claimed, DigestItem, DigestStatus
from ._base import _now, retried, retrying
from ._digest_rows import DigestReads, digest_id, id_filters
from ._schema import deliveries, digests

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
# `take_over`'s `seen`: the lease a decision was made on (None: the row had none), or ANY_LEASE.
ANY_LEASE = "any"
Lease = datetime | None | str


class Claims(DigestReads):
    """Claim → hold: never two senders for one digest, never one entry in two digests."""

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

        def attempt(again: bool) -> Claimed | None:
            if again:  # the try before was dropped: had it committed after all?
                row = self.get_digest(did)
                if row is not None:
                    ours = row.owner == owner and owner
                    return Claimed(did, tuple(self.digest_items(did))) if ours else None
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

        return retried(attempt)

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
                conn.execute(_NEW_DELIVERIES, _delivery_rows(subscriber_id, did, kept))
        return Claimed(did, tuple(kept))

    def claim_many(
        self,
        claims: Sequence[Claim],
        owner: str = "",
        lease: timedelta = timedelta(minutes=5),
        now: datetime | None = None,
    ) -> list[Claimed | None]:
        """`claim` for many digests at once, in one transaction.

        The same results as calling `claim` for each; if another process claims one of them
        meanwhile, the batch falls back to one `claim` per digest. A transaction the database
        dropped is run again; if the dropped one had in fact committed (its acknowledgement was
        lost), the rows it made — this owner, created at this `now` — are returned as claimed,
        not as claimed by someone else.
        """
        at = now or _now()
        return retried(lambda again: self._claim_many(claims, owner, lease, at, again=again))

    def _claim_many(
        self,
        claims: Sequence[Claim],
        owner: str,
        lease: timedelta,
        now: datetime,
        again: bool,
    ) -> list[Claimed | None]:
        """One try at `claim_many`'s transaction; `again`: a retry, so rows this owner made at
        this `now` are ours, from a try that committed unacknowledged.

        Long on purpose: the bulk statements, the conflict check and the fallback share one
        transaction and its rows; split into functions they would need that state passed around.
        """
        ids = [digest_id(c.subscriber_id, c.slot) for c in claims]
        ours: dict[str, bool] = {}  # a digest our unacknowledged try made → whether it is empty
        try:
            with self.begin() as conn:
                seen = set()
                for did, row_owner, created, status in conn.execute(
                    select(
                        digests.c.id, digests.c.owner, digests.c.created_at, digests.c.status
                    ).where(digests.c.id.in_(ids))
                ):
                    seen.add(did)
                    if again and owner and row_owner == owner and created == now:
                        ours[did] = status == DigestStatus.EMPTY
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
                        out.append(Claimed(did, ()) if did in ours else None)
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
                    lines.extend(_delivery_rows(sub, did, kept))
                    out.append(Claimed(did, tuple(kept)))
                if rows:
                    conn.execute(insert(digests), rows)
                if lines:
                    conn.execute(insert(deliveries), lines)
            if any(not empty for empty in ours.values()):
                items = self.digest_items_of([d for d, empty in ours.items() if not empty])
                out = [
                    Claimed(r.digest_id, tuple(items[r.digest_id]))
                    if r is not None and r.digest_id in items
                    else r
                    for r in out
                ]
            return out
        except IntegrityError:  # another process claimed one meanwhile: settle each on its own
            return [
                self.claim(c.subscriber_id, c.slot, c.items, c.channel, c.more, owner, lease, now)
                for c in claims
            ]

    @retrying
    def take_over(
        self,
        did: str,
        old_owner: str,
        owner: str,
        lease: timedelta,
        now: datetime | None = None,
        *,
        seen: Lease,
    ) -> bool:
        """Atomically make `owner` the sender of a pending digest still held by `old_owner`.

        `seen`: the lease the decision to take it was made on (`row.lease_until`, None for
        none); the digest is taken only if that lease is still the one it has, so a lease its
        sender renewed after it was read is not taken from it. ANY_LEASE: whatever its lease
        (taking it did not depend on it: a digest waiting in the queue).
        (Already held by `owner` counts too, so a retry after a dropped commit still succeeds;
        not when `owner` is `old_owner` (the queue re-queuing its own): then only `seen` decides,
        or two dispatchers reading the same row would both re-queue it.)
        """
        now = now or _now()
        held = digests.c.owner == old_owner
        if seen is None:
            held = and_(held, digests.c.lease_until.is_(None))
        elif isinstance(seen, datetime):
            held = and_(held, digests.c.lease_until == seen)
        with self.begin() as conn:
            done = conn.execute(
                update(digests)
                .where(
                    and_(
                        digests.c.id == did,
                        digests.c.status == DigestStatus.PENDING,
                        held if owner == old_owner else or_(held, digests.c.owner == owner),
                    )
                )
                .values(owner=owner, lease_until=now + lease)
            )
            return bool(done.rowcount)

    @retrying
    def hold_for(
        self, dids: Sequence[str], owner: str, lease: timedelta, now: datetime | None = None
    ) -> int:
        """Set the lease of the pending digests among `dids` that `owner` still holds to `lease`
        from now (a dispatcher's digests, once their tasks are in the queue); return how many."""
        now = now or _now()
        done = 0
        with self.begin() as conn:
            for where in id_filters(conn, digests.c.id, list(dids)):
                done += conn.execute(
                    update(digests)
                    .where(
                        and_(
                            where,
                            digests.c.status == DigestStatus.PENDING,
                            digests.c.owner == owner,
                        )
                    )
                    .values(lease_until=now + lease)
                ).rowcount
        return done

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
    def release(
        self, did: str, owner: str, now: datetime | None = None, reason: str | None = None
    ) -> None:
        """Give up a digest that stays pending (owner cleared), so the next run anywhere may retry it;
        `reason`: why it waits (kept as it was when None)."""
        values: dict[str, Any] = {"owner": "", "lease_until": now or _now()}
        if reason is not None:
            values["reason"] = reason
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
                .values(**values)
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


def _delivery_rows(
    subscriber_id: str, digest_id: str, items: Sequence[DigestItem]
) -> list[dict[str, Any]]:
    """The `deliveries` rows of a claimed digest: one per item, in the digest's order."""
    return [
        {
            "subscriber_id": subscriber_id,
            "entry_id": i.entry.id,
            "digest_id": digest_id,
            "position": n,
            "score": float(i.score),
            "why": json.dumps(list(i.why)),
            "topic": i.topic,
        }
        for n, i in enumerate(items)
    ]
