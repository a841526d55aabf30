"""The store on SQLite and PostgreSQL: entries, fetch state, the ledger, feedback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.errors import StoreError
from bot.models import DigestItem, Entry, FetchState
from bot.store import ANY_LEASE, SCHEMA_VERSION, Store, digest_id, open_store, sqlite_path

NOW = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
SLOT = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def entry(n: int, **kw: object) -> Entry:
    return Entry(
        id=f"arxiv:2611.{n:05d}",
        title=f"Paper {n}",
        summary="s",
        url=f"https://arxiv.org/abs/2611.{n:05d}",
        authors=("A. Author",),
        published=NOW - timedelta(hours=n),
        source="test",
        **kw,
    )  # type: ignore[arg-type]


def items(*ns: int) -> list[DigestItem]:
    return [DigestItem(entry(n), 0.5, ("keyword: x",), "topic") for n in ns]


def test_upsert_counts_new_updated_unchanged(store: Store) -> None:
    assert store.upsert_entries([entry(1), entry(2)], NOW) == (2, 0, 0)
    assert store.upsert_entries([entry(1), entry(2)], NOW) == (0, 0, 2)
    enriched = Entry(
        id="arxiv:2611.00001", title="Paper 1", source="hf", extra={"upvotes": 12}, tags=("llm",)
    )
    assert store.upsert_entries([enriched], NOW) == (0, 1, 0)
    got = store.get_entries(["arxiv:2611.00001"])["arxiv:2611.00001"]
    assert got.extra == {"upvotes": 12}
    assert got.tags == ("llm",)
    assert got.authors == ("A. Author",)  # the later source had none: kept, not lost
    assert got.summary == "s"
    assert got.source == "test"


def test_same_id_twice_in_one_batch_is_one_entry(store: Store) -> None:
    a = Entry(id="arxiv:1", title="T", extra={"upvotes": 3})
    b = Entry(id="arxiv:1", title="T", extra={"version": 2})
    assert store.upsert_entries([a, b], NOW) == (1, 0, 0)
    assert store.get_entries(["arxiv:1"])["arxiv:1"].extra == {"upvotes": 3, "version": 2}


def test_undated_entry_gets_its_first_seen_time(store: Store) -> None:
    store.upsert_entries([Entry(id="https://blog.example.org/a", title="A")], NOW)
    assert (
        store.get_entries(["https://blog.example.org/a"])["https://blog.example.org/a"].published
        == NOW
    )


def test_entries_since(store: Store) -> None:
    store.upsert_entries([entry(1)], NOW - timedelta(days=20))
    store.upsert_entries([entry(2)], NOW)
    ids = [e.id for e in store.entries_since(NOW - timedelta(days=1))]
    assert "arxiv:2611.00002" in ids
    assert "arxiv:2611.00001" in ids  # published within the day, though first seen long ago
    old = Entry(id="arxiv:old", title="Old", published=NOW - timedelta(days=40))
    store.upsert_entries([old], NOW - timedelta(days=40))
    assert "arxiv:old" not in [e.id for e in store.entries_since(NOW - timedelta(days=7))]


def test_fetch_state_kept_and_errors_do_not_wipe_it(store: Store) -> None:
    assert store.get_state("feed") == FetchState()
    store.save_fetch(
        "feed",
        FetchState('"abc"', "Sat, 28 Nov 2026 07:00:00 GMT", {"day": "2026-11-28"}),
        counts={"new": 3},
        now=NOW,
    )
    store.save_fetch("feed", None, error="timed out", now=NOW + timedelta(minutes=30))
    state = store.get_state("feed")
    assert state.etag == '"abc"' and state.cursor == {"day": "2026-11-28"}
    (status,) = store.source_statuses()
    assert status.last_error == "timed out"
    assert status.last_success == NOW
    assert status.counts == {"new": 3}


def test_claim_is_once_per_slot(store: Store) -> None:
    store.upsert_entries([entry(1), entry(2)], NOW)
    first = store.claim("alice", SLOT, items(1, 2), "outbox", now=NOW)
    assert first is not None
    did, kept = first.digest_id, first.items
    assert did == digest_id("alice", SLOT) == "alice.20261128T0700Z"
    assert [i.entry.id for i in kept] == ["arxiv:2611.00001", "arxiv:2611.00002"]
    assert store.claim("alice", SLOT, items(1, 2), "outbox", now=NOW) is None
    assert store.delivered(["alice", "bob"]) == {
        "alice": {"arxiv:2611.00001", "arxiv:2611.00002"},
        "bob": set(),
    }
    assert store.last_slots() == {"alice": SLOT}


def test_an_entry_is_claimed_once_per_subscriber(store: Store) -> None:
    store.upsert_entries([entry(1), entry(2), entry(3)], NOW)
    store.claim("alice", SLOT, items(1, 2), "outbox", now=NOW)
    later = store.claim("alice", SLOT + timedelta(days=1), items(2, 3), "outbox", now=NOW)
    assert later is not None
    assert [i.entry.id for i in later.items] == ["arxiv:2611.00003"]
    other = store.claim("bob", SLOT, items(1), "outbox", now=NOW)
    assert other is not None and len(other.items) == 1


def test_history_of_one_state_and_the_items_of_many_digests_in_one_read(store: Store) -> None:
    """What the feed reads: the latest digests *sent* (not the latest of any state), and each
    one's items in their order, for any number of digests at once."""
    store.upsert_entries([entry(n) for n in range(1, 8)], NOW)
    sent = store.claim("alice", SLOT, items(3, 1, 2), "outbox", now=NOW)
    assert sent is not None
    store.mark_sent(sent.digest_id, "250 ok", NOW)
    failed = []
    for day in range(1, 4):  # three newer digests that failed
        c = store.claim("alice", SLOT + timedelta(days=day), items(3 + day), "outbox", now=NOW)
        assert c is not None
        store.mark_failed(c.digest_id, "550 no such user")
        failed.append(c.digest_id)
    pending = store.claim("bob", SLOT, items(7, 6), "outbox", now=NOW)
    assert pending is not None
    assert [r.id for r in store.history("alice", 3)] == failed[::-1]
    assert [r.id for r in store.history("alice", 3, statuses=["sent"])] == [sent.digest_id]
    assert store.history("alice", 3, statuses=["empty"]) == []
    got = store.digest_items_of([sent.digest_id, pending.digest_id, "nobody.20261128T0700Z"])
    assert [i.entry.id for i in got[sent.digest_id]] == [
        "arxiv:2611.00003",
        "arxiv:2611.00001",
        "arxiv:2611.00002",
    ]
    assert [i.entry.id for i in got[pending.digest_id]] == ["arxiv:2611.00007", "arxiv:2611.00006"]
    assert got["nobody.20261128T0700Z"] == [] and store.digest_items_of([]) == {}
    assert store.digest_items(sent.digest_id) == got[sent.digest_id]


def test_empty_claim_consumes_the_slot(store: Store) -> None:
    claimed = store.claim("alice", SLOT, [], "outbox", now=NOW)
    assert claimed is not None and claimed.items == ()
    row = store.get_digest(claimed.digest_id)
    assert row is not None and row.status == "empty"


def test_confirm_sent_and_failed(store: Store) -> None:
    store.upsert_entries([entry(1), entry(2)], NOW)
    claimed = store.claim("alice", SLOT, items(1), "email", now=NOW)
    assert claimed is not None
    did = claimed.digest_id
    assert [r.id for r in store.digests_with_status("pending")] == [did]
    assert store.note_attempt(did, "451 try later") == 1
    store.mark_sent(did, "<alice.20261128T0700Z@example.org>", now=NOW)
    row = store.get_digest(did)
    assert row is not None and (row.status, row.sent_at, row.attempts, row.reason) == (
        "sent",
        NOW,
        2,
        "",
    )
    assert [i.entry.id for i in store.digest_items(did)] == ["arxiv:2611.00001"]

    refused = store.claim("bob", SLOT, items(2), "email", now=NOW)
    assert refused is not None
    bad = refused.digest_id
    store.mark_failed(bad, "550 no such user")
    row = store.get_digest(bad)
    assert row is not None and (row.status, row.reason) == ("failed", "550 no such user")
    assert store.delivered(["bob"]) == {"bob": set()}  # a permanent failure frees the entries
    delivery = store.deliveries_of(did)
    assert (
        delivery is not None
        and delivery.entry_ids == ("arxiv:2611.00001",)
        and delivery.status == "sent"
    )


def test_take_over_is_compare_and_swap(store: Store) -> None:
    store.upsert_entries([entry(1)], NOW)
    claimed = store.claim("alice", SLOT, items(1), "email", owner="h:1", now=NOW)
    assert claimed is not None
    did = claimed.digest_id
    assert store.take_over(did, "h:1", "h:2", timedelta(minutes=5), seen=ANY_LEASE)
    assert not store.take_over(did, "h:1", "h:3", timedelta(minutes=5), seen=ANY_LEASE)
    row = store.get_digest(did)
    assert row is not None and row.owner == "h:2"


def test_feedback_replaces_the_earlier_vote(store: Store) -> None:
    store.upsert_entries([entry(1), entry(2)], NOW)
    store.record_feedback("alice", "arxiv:2611.00001", 1, NOW)
    store.record_feedback("alice", "arxiv:2611.00001", -1, NOW + timedelta(seconds=1))
    store.record_feedback("alice", "arxiv:2611.00002", 1, NOW + timedelta(seconds=2))
    votes = store.feedback_for(["alice", "bob"])
    assert [(e.id, v) for e, v in votes["alice"]] == [
        ("arxiv:2611.00001", -1),
        ("arxiv:2611.00002", 1),
    ]
    assert "bob" not in votes
    with pytest.raises(StoreError, match="no entry 'arxiv:nope'"):
        store.record_feedback("alice", "arxiv:nope", 1, NOW)
    with pytest.raises(ValueError):
        store.record_feedback("alice", "arxiv:2611.00001", 2, NOW)


def test_schema_version_is_recorded_and_a_newer_one_refused(backend_url: str) -> None:
    s = Store(backend_url)
    with s.engine.begin() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalar() == SCHEMA_VERSION
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    s.close()
    with pytest.raises(StoreError, match="upgrade digestbot"):
        Store(backend_url)


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        store.upsert_entries([entry(1)], datetime(2026, 1, 1))


def test_unreachable_database_says_the_fix() -> None:
    with pytest.raises(StoreError) as err:
        Store("postgresql+psycopg://digest:hunter2@127.0.0.1:1/nodb")
    message = str(err.value)
    assert "check DIGESTBOT_DATABASE_URL" in message
    assert "hunter2" not in message  # the password never shows


def test_sqlite_uses_wal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Store(f"sqlite:///{tmp_path / 'w.db'}")
    with s.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    s.close()


def test_lookups_of_more_ids_than_one_batch_find_every_row(store: Store) -> None:
    many = [Entry(id=f"https://blog.example.org/{n}", title=f"T{n}") for n in range(1234)]
    assert store.upsert_entries(many, NOW) == (1234, 0, 0)
    assert store.upsert_entries(many, NOW) == (
        0,
        0,
        1234,
    )  # every batch of the existing rows was read
    ids = [e.id for e in many] + ["https://blog.example.org/missing"]
    assert len(store.get_entries(ids)) == 1234
    subscribers = [f"s{n}" for n in range(1100)]
    store.upsert_entries([entry(1)], NOW)
    assert store.claim("s1050", SLOT, items(1), "email", now=NOW) is not None
    store.record_feedback("s1050", "arxiv:2611.00001", 1, NOW)
    assert store.delivered(subscribers)["s1050"] == {"arxiv:2611.00001"}
    assert [e.id for e, _ in store.feedback_for(subscribers)["s1050"]] == ["arxiv:2611.00001"]


def test_a_rate_window_longer_than_a_day_keeps_its_events(store: Store) -> None:
    week = timedelta(days=7)
    assert store.hit_rate("client:x", week, 2, NOW)
    assert store.hit_rate("client:x", week, 2, NOW + timedelta(days=2))
    assert not store.hit_rate("client:x", week, 2, NOW + timedelta(days=3))  # both still count
    assert store.hit_rate("client:x", week, 2, NOW + timedelta(days=8))  # the first left the window


def test_open_store_applies_the_durability_setting_and_closes_as_a_context(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    for mode, pragma in (("NORMAL", 1), ("FULL", 2)):
        with open_store(Settings(database_url=url, database_sqlite_synchronous=mode)) as store:
            with store.engine.connect() as conn:
                assert conn.execute(text("PRAGMA synchronous")).scalar() == pragma
            assert store.engine.pool.checkedin() == 1
        assert store.engine.pool.checkedin() == 0  # closed on leaving the block


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///digestbot.db", Path("digestbot.db")),
        ("sqlite:////srv/d/digestbot.db", Path("/srv/d/digestbot.db")),
        ("sqlite+pysqlite:///x.db?timeout=5", Path("x.db")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("postgresql+psycopg://u:p@h/db", None),
        ("not a url", None),
    ],
)
def test_sqlite_path_names_the_file_of_a_sqlite_url(url: str, path: Path | None) -> None:
    assert sqlite_path(url) == path


# --- marks: a pause or unsubscribe for a file subscriber belongs to an address (issue 17.12) ----


def test_a_mark_keeps_its_address_and_a_new_mark_without_one_forgets_it(store: Store) -> None:
    t0 = datetime(2026, 11, 28, 12, tzinfo=UTC)
    store.set_subscriber_status("bob", "unsubscribed", t0, address="Bob@Example.org")
    (mark,) = store.subscriber_marks().values()
    assert (mark.subscriber_id, mark.status, mark.updated_at, mark.address) == (
        "bob",
        "unsubscribed",
        t0,
        "Bob@Example.org",
    )
    assert mark.applies_to(" bob@example.ORG") and not mark.applies_to("robert@example.org")
    assert not store.tie_subscriber_mark("bob", "robert@example.org")  # tied already
    # a later mark whose address the caller does not know is not the old address's
    store.set_subscriber_status("bob", "paused", t0 + timedelta(hours=1))
    mark = store.subscriber_marks()["bob"]
    assert (mark.status, mark.address) == ("paused", None)
    assert mark.applies_to("anyone@example.org")
    assert store.tie_subscriber_mark("bob", "robert@example.org")
    assert store.subscriber_marks()["bob"].address == "robert@example.org"
    assert not store.tie_subscriber_mark("nobody", "x@example.org")  # no mark, nothing made
    assert store.subscriber_statuses() == {"bob": "paused"}
