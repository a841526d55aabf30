"""The delivery ledger: a digest confirmed sent or failed, and the votes cast on delivered entries.

Split by concern: `_digest_rows` (rows and reads), `_claims` (claims and leases), this module
(confirmation and feedback); `Ledger` joins them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, bindparam, delete, insert, select, update

from ..errors import StoreError
from ..models import DigestStatus, Entry
from ._base import _now, retrying
from ._claims import Claims
from ._digest_rows import DigestRow, digest_id, id_filters
from ._entries import _entry
from ._schema import deliveries, digests, entries, feedback

__all__ = ["DigestRow", "Ledger", "digest_id"]

_SENT = update(digests).values(
    status=DigestStatus.SENT,
    sent_at=bindparam("at"),
    receipt=bindparam("rcpt"),
    reason="",
    attempts=digests.c.attempts + 1,
)
_SENT_ANY = _SENT.where(digests.c.id == bindparam("did"))
_SENT_OURS = _SENT.where(
    and_(digests.c.id == bindparam("did"), digests.c.owner == bindparam("held_by"))
)


class Ledger(Claims):
    """Digests and deliveries: never twice, never lost; and the votes cast on delivered entries."""

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
    def mark_sent(
        self, did: str, receipt: str, now: datetime | None = None, *, owner: str | None = None
    ) -> bool:
        """Confirm a digest as sent, with the channel's receipt; `owner`: only while it still
        holds it (False when another sender took it over meanwhile: that one confirms it)."""
        args = {"did": did, "at": now or _now(), "rcpt": receipt}
        with self.begin() as conn:
            if owner is None:
                return bool(conn.execute(_SENT_ANY, args).rowcount)
            return bool(conn.execute(_SENT_OURS, {**args, "held_by": owner}).rowcount)

    @retrying
    def mark_failed(self, did: str, reason: str, *, owner: str | None = None) -> bool:
        """A permanent failure: record the reason and free the digest's entries for later digests;
        `owner`: only while it still holds it (False, and nothing changed, when it does not)."""
        where = digests.c.id == did
        if owner is not None:
            where = and_(where, digests.c.owner == owner)
        with self.begin() as conn:
            done = conn.execute(
                update(digests)
                .where(where)
                .values(status=DigestStatus.FAILED, reason=reason, attempts=digests.c.attempts + 1)
            )
            if not done.rowcount:
                return False
            conn.execute(delete(deliveries).where(deliveries.c.digest_id == did))
            return True

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
            for where in id_filters(conn, feedback.c.subscriber_id, wanted):
                q = (
                    select(feedback.c.subscriber_id, feedback.c.vote, entries)
                    .join(entries, entries.c.id == feedback.c.entry_id)
                    .where(where)
                    .order_by(feedback.c.created_at)
                )
                for r in conn.execute(q):
                    out.setdefault(r.subscriber_id, []).append((_entry(r), r.vote))
        return out
