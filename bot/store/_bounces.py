"""Bounces, complaints and suspensions (bot.bounces): what came back, and who gets no digests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select

from ._base import StoreBase, _now
from ._schema import bounces, suspensions


@dataclass(frozen=True, slots=True)
class BounceRow:
    """One bounce or complaint recorded against a subscriber."""

    subscriber_id: str
    kind: str  # hard | soft | complaint
    code: str
    reason: str
    at: datetime
    digest_id: str = ""
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class Suspension:
    """A subscriber who gets no digests until resumed, and why."""

    subscriber_id: str
    reason: str
    at: datetime


class BounceRecords(StoreBase):
    """The `bounces` and `suspensions` tables."""

    def add_bounce(self, row: BounceRow) -> bool:
        """Record one bounce or complaint; False when this message (its Message-ID, for this
        subscriber) is recorded already: read twice (a mailbox move that failed after recording,
        a provider's webhook sent again), it counts once."""
        with self.begin() as conn:
            if (
                row.message_id
                and conn.execute(
                    select(bounces.c.id)
                    .where(bounces.c.subscriber_id == row.subscriber_id)
                    .where(bounces.c.message_id == row.message_id[:300])
                    .limit(1)
                ).first()
            ):
                return False
            conn.execute(
                insert(bounces).values(
                    subscriber_id=row.subscriber_id,
                    kind=row.kind,
                    code=row.code[:20],
                    reason=row.reason,
                    at=row.at,
                    digest_id=row.digest_id[:300],
                    message_id=row.message_id[:300],
                )
            )
        return True

    def bounces_of(self, sid: str, limit: int = 20) -> list[BounceRow]:
        """A subscriber's latest bounces and complaints, newest first."""
        q = (
            select(bounces)
            .where(bounces.c.subscriber_id == sid)
            .order_by(bounces.c.at.desc(), bounces.c.id.desc())
            .limit(limit)
        )
        with self.begin() as conn:
            return [
                BounceRow(
                    r.subscriber_id, r.kind, r.code, r.reason, r.at, r.digest_id, r.message_id
                )
                for r in conn.execute(q)
            ]

    def count_bounces(self, sid: str, kind: str, since: datetime, digest_id: str = "") -> int:
        """How many bounces of `kind` a subscriber has had since `since` (of one digest, if given)."""
        q = select(func.count()).where(
            bounces.c.subscriber_id == sid, bounces.c.kind == kind, bounces.c.at >= since
        )
        if digest_id:
            q = q.where(bounces.c.digest_id == digest_id)
        with self.begin() as conn:
            return int(conn.execute(q).scalar_one())

    def suspend(self, sid: str, reason: str, now: datetime | None = None) -> bool:
        """Suspend a subscriber (no digests until resumed); False if already suspended."""
        with self.begin() as conn:
            if conn.execute(
                select(suspensions.c.subscriber_id).where(suspensions.c.subscriber_id == sid)
            ).first():
                return False
            conn.execute(
                insert(suspensions).values(subscriber_id=sid, reason=reason, at=now or _now())
            )
        return True

    def resume(self, sid: str) -> bool:
        """Lift a suspension; False if the subscriber was not suspended."""
        with self.begin() as conn:
            done = conn.execute(delete(suspensions).where(suspensions.c.subscriber_id == sid))
        return bool(done.rowcount)

    def suspensions(self) -> dict[str, Suspension]:
        """Every suspended subscriber, by id."""
        with self.begin() as conn:
            return {
                r.subscriber_id: Suspension(r.subscriber_id, r.reason, r.at)
                for r in conn.execute(select(suspensions))
            }
