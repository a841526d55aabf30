"""`Store.claim_many`, the dispatcher's batched claim: the same answers as `claim`, one transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from _pool import entries
from sqlalchemy import insert

from bot.models import Claim, Claimed, DigestItem
from bot.store import Store, digest_id, digests


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    s = Store(pg_url)
    yield s
    s.close()


def _items(n: int, now: datetime) -> list[DigestItem]:
    return [DigestItem(e, 0.5) for e in entries(n, now)]


def test_claim_many_answers_as_claim_does(store: Store) -> None:
    now = datetime.now(UTC)
    slot = now.replace(second=0, microsecond=0)
    items = _items(4, now)
    store.upsert_entries([i.entry for i in items], now)
    assert (
        store.claim("a", slot, items[:2], "email") is not None
    )  # a's slot is taken; a has entries 0, 1
    assert (
        store.claim("b", slot - timedelta(days=1), items[:3], "email") is not None
    )  # b had 0, 1, 2
    got = store.claim_many(
        [
            Claim("a", slot, items, "email", 0),  # slot claimed already
            Claim("b", slot, items, "email", 2),  # only entry 3 is new to b
            Claim("c", slot, items[:2], "email", 0),
            Claim(
                "c", slot + timedelta(days=1), items[:3], "email", 0
            ),  # c's second digest: only entry 2 is left
            Claim("d", slot, [], "email", 0),  # nothing to send: an empty digest
        ],
        owner="(queued)",
        lease=timedelta(hours=2),
        now=now,
    )
    assert got[0] is None
    assert got[1] == Claimed(digest_id("b", slot), (items[3],))
    assert got[2] == Claimed(digest_id("c", slot), tuple(items[:2]))
    assert got[3] == Claimed(digest_id("c", slot + timedelta(days=1)), (items[2],))
    assert got[4] == Claimed(digest_id("d", slot), ())
    row = store.get_digest(digest_id("b", slot))
    assert row is not None and (row.status, row.owner, row.more, row.lease_until) == (
        "pending",
        "(queued)",
        2,
        now + timedelta(hours=2),
    )
    assert store.digest_items(digest_id("c", slot)) == items[:2]
    empty = store.get_digest(digest_id("d", slot))
    assert empty is not None and empty.status == "empty"


def test_claim_many_yields_a_slot_another_process_is_claiming(store: Store) -> None:
    now = datetime.now(UTC)
    slot = now.replace(second=0, microsecond=0)
    items = _items(2, now)
    store.upsert_entries([i.entry for i in items], now)
    other = store.engine.connect()
    tx = other.begin()  # another dispatcher, halfway through claiming x's slot
    other.execute(
        insert(digests).values(
            id=digest_id("x", slot),
            subscriber_id="x",
            slot=slot,
            status="pending",
            channel="email",
            created_at=now,
            more=0,
            owner="other:1",
            attempts=0,
            receipt="",
            reason="",
        )
    )
    out: list[object] = []
    t = threading.Thread(
        target=lambda: out.append(
            store.claim_many(
                [Claim("x", slot, items, "email", 0), Claim("y", slot, items, "email", 0)],
                owner="(queued)",
            )
        )
    )
    t.start()
    time.sleep(1.0)  # claim_many now waits on x's unique key
    tx.commit()
    other.close()
    t.join(30)
    assert out == [[None, Claimed(digest_id("y", slot), tuple(items))]]
