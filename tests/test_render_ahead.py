"""`Deliverer.deliver_all`: the next digest claimed and rendered while one is on the wire, one sent-but-unconfirmed at most."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from peers import SmtpPeer, SmtpScript

from bot.channels import email
from bot.config import Settings
from bot.delivery import Deliverer, Held, Plan
from bot.delivery.process import SWITCH_SECONDS
from bot.models import Digest, DigestItem, Entry, Interests, Subscriber
from bot.store import Store

SLOT = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
PAPERS = [
    Entry(
        id=f"arxiv:2611.{n:05d}",
        title=f"Quantization method {n}",
        published=SLOT - timedelta(hours=1),
    )
    for n in range(3)
]


def reader(n: int) -> Subscriber:
    return Subscriber(
        id=f"r{n}",
        email=f"r{n}@example.org",
        schedule="0 * * * *",
        timezone="UTC",
        interests=Interests(keywords=("quantization",)),
    )


def plan(n: int, *papers: Entry) -> Plan:
    return Plan(
        reader(n), SLOT, tuple(DigestItem(p, 0.5, ("keyword: quantization",)) for p in papers)
    )


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[Digest]:
    """Every digest rendered as an email, in order."""
    seen: list[Digest] = []
    real = email.wire_message

    def counting(digest: Digest, settings: Settings, now: datetime | None = None) -> email.Wire:
        seen.append(digest)
        return real(digest, settings, now)

    monkeypatch.setattr(email, "wire_message", counting)
    return seen


def world(tmp_path: Path, smtp: SmtpPeer) -> tuple[Settings, Store]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        smtp_url=smtp.url,
        smtp_rate=0,
        from_addr="digest <digest@lab.example>",
    )
    store = Store(settings.database_url)
    store.upsert_entries(PAPERS, SLOT)
    return settings, store


def test_each_digest_is_rendered_once_and_sent_in_order(
    tmp_path: Path, rendered: list[Digest]
) -> None:
    with SmtpPeer() as smtp:
        settings, store = world(tmp_path, smtp)
        d = Deliverer(settings, store)
        outcomes = d.deliver_all([plan(n, *PAPERS) for n in range(4)])
        d.close()
    assert [(o.subscriber, o.status) for o in outcomes] == [(f"r{n}", "sent") for n in range(4)]
    assert [m.to for m in smtp.mails] == [(f"r{n}@example.org",) for n in range(4)]
    assert [r.id for r in rendered] == [
        f"r{n}.20261128T0700Z" for n in range(4)
    ]  # prepared ahead, used as is
    assert {r.status for r in store.digests_with_status("sent", "pending")} == {"sent"}


def test_a_digest_whose_claim_dropped_an_entry_is_rendered_without_it(
    tmp_path: Path, rendered: list[Digest]
) -> None:
    with SmtpPeer() as smtp:
        settings, store = world(tmp_path, smtp)
        earlier = store.claim("r1", SLOT - timedelta(days=1), [DigestItem(PAPERS[0], 0.9)], "email")
        assert earlier is not None
        d = Deliverer(settings, store)
        [outcome] = d.deliver_all([plan(1, *PAPERS)])
        d.close()
    assert outcome.status == "sent" and outcome.entries == 2
    assert [len(r.items) for r in rendered] == [2]  # rendered after the claim, once
    assert [i.entry.id for i in store.digest_items(outcome.digest_id)] == [p.id for p in PAPERS[1:]]
    assert len(smtp.mails) == 1


def test_a_stop_sends_nothing_after_the_digest_in_flight_and_gives_back_what_was_claimed_ahead(
    tmp_path: Path,
) -> None:
    with SmtpPeer() as smtp:
        settings, store = world(tmp_path, smtp)
        d = Deliverer(settings, store)
        done: list[str] = []
        outcomes = d.deliver_all(
            [plan(n, *PAPERS) for n in range(5)],
            stop=lambda: bool(done),
            progress=lambda o: done.append(o.subscriber),
        )
        d.close()
    assert [o.subscriber for o in outcomes] == ["r0"] and len(smtp.mails) == 1
    assert [r.subscriber_id for r in store.digests_with_status("sent", "pending", "empty")] == [
        "r0"
    ]


def test_an_error_in_the_ledger_reaches_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SmtpPeer() as smtp:
        settings, store = world(tmp_path, smtp)

        def broken(*_a: object, **_kw: object) -> None:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(store, "mark_sent", broken)
        d = Deliverer(settings, store)
        with pytest.raises(RuntimeError, match="disk on fire"):
            d.deliver_all([plan(n, *PAPERS) for n in range(3)])
        d.close()
    assert len(smtp.mails) == 1  # the sender stopped at the first error


def test_an_interrupt_finishes_the_digest_on_the_wire_and_starts_not_the_queued_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SmtpPeer(SmtpScript(delay=0.5)) as smtp:
        settings, store = world(tmp_path, smtp)
        d = Deliverer(settings, store)
        real = d.prepare

        def interrupted(held: Held) -> None:
            if held.digest.subscriber.id == "r2":  # r0 on the wire, r1 queued, r2 claimed
                raise KeyboardInterrupt
            real(held)

        monkeypatch.setattr(d, "prepare", interrupted)
        with pytest.raises(KeyboardInterrupt):
            d.deliver_all([plan(n, *PAPERS) for n in range(4)])
        d.close()
    assert len(smtp.mails) == 1
    assert [
        (r.subscriber_id, r.status) for r in store.digests_with_status("sent", "pending", "empty")
    ] == [("r0", "sent")]


def test_unclaim_gives_back_only_an_untried_digest_of_its_owner(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.upsert_entries(PAPERS, SLOT)
    try:
        tried = store.claim("r1", SLOT, [DigestItem(PAPERS[0], 0.5)], "email", owner="me:1")
        untried = store.claim("r2", SLOT, [DigestItem(PAPERS[0], 0.5)], "email", owner="me:1")
        assert tried is not None and untried is not None
        store.note_attempt(tried.digest_id, "451 try later")
        assert not store.unclaim(tried.digest_id, "me:1")  # it may have reached the server
        assert not store.unclaim(untried.digest_id, "other:2")
        assert store.unclaim(untried.digest_id, "me:1")
        assert store.get_digest(untried.digest_id) is None and store.delivered(["r2"]) == {
            "r2": set()
        }
        assert (
            store.claim("r2", SLOT, [DigestItem(PAPERS[0], 0.5)], "email", owner="me:1") is not None
        )  # free again
        assert store.get_digest(tried.digest_id) is not None
    finally:
        store.close()


def test_a_digest_claimed_ahead_whose_lease_grew_old_while_waiting_is_renewed_or_left_to_its_taker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SmtpPeer(SmtpScript(delay=0.4)) as smtp:
        settings, store = world(tmp_path, smtp)
        asked: list[str] = []

        def taken_over(did: str, *_a: object, **_kw: object) -> bool:
            asked.append(did)
            return False  # another host's process took it when the lease ran out

        monkeypatch.setattr(store, "renew", taken_over)
        d = Deliverer(settings, store, lease=timedelta(seconds=0.6))  # renewed after 0.2 s
        outcomes = d.deliver_all([plan(0, *PAPERS), plan(1, *PAPERS)])
        d.close()
    assert [(o.subscriber, o.status) for o in outcomes] == [("r0", "sent"), ("r1", "skipped")]
    # r1's lease, old by its turn, is renewed before its send (r0's is renewed during its send
    # too, by the sender's heartbeat: the try in flight ends and is confirmed as ours)
    assert "r1.20261128T0700Z" in asked and len(smtp.mails) == 1


def test_the_thread_switch_interval_is_short_while_sending_and_restored_after(
    tmp_path: Path,
) -> None:
    before = sys.getswitchinterval()
    with SmtpPeer() as smtp:
        settings, store = world(tmp_path, smtp)
        d = Deliverer(settings, store)
        during: list[float] = []
        d.deliver_all(
            [plan(n, *PAPERS) for n in range(2)],
            progress=lambda _o: during.append(sys.getswitchinterval()),
        )
        d.close()
    assert during == [pytest.approx(SWITCH_SECONDS)] * 2
    assert sys.getswitchinterval() == before
