"""The ledger through the pipeline against real peers: SMTP and Slack faults, leases, recovery, a busy database."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from peers import Reply, SlackPeer, SmtpPeer, SmtpScript, pg_schema
from sqlalchemy import text

from bot.config import Settings
from bot.delivery import (
    Deliverer,
    RetryPolicy,
    RunReport,
    next_digest,
    owner_token,
    plan_digests,
    run_once,
)
from bot.errors import TransientSendError
from bot.models import Digest, Entry, Interests, Receipt, Subscriber
from bot.store import ANY_LEASE, Store

NOW = datetime.now(UTC)
FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05)


def reader(n: int, **kw: str) -> Subscriber:
    return Subscriber(
        id=f"r{n}",
        email=kw.get("email", f"r{n}@example.org"),
        slack_channel=kw.get("slack", ""),
        schedule="0 * * * *",
        timezone="UTC",
        interests=Interests(keywords=("quantization",)),
    )


def papers(store: Store, count: int = 3) -> None:
    store.upsert_entries(
        [
            Entry(
                id=f"arxiv:2611.{n:05d}",
                title=f"Quantization method {n}",
                summary="Low-bit quantization.",
                published=NOW,
            )
            for n in range(count)
        ]
    )


def world(tmp_path: Path, **settings: str) -> tuple[Settings, Store]:
    s = Settings(
        database_url=settings.pop("database_url", f"sqlite:///{tmp_path / 'db.sqlite'}"),
        outbox_dir=tmp_path / "outbox",
        from_addr="digest <digest@lab.example>",
        **settings,
    )  # type: ignore[arg-type]
    store = Store(s.database_url)
    papers(store)
    return s, store


def run(
    settings: Settings, store: Store, subs: list[Subscriber], retry: RetryPolicy = FAST
) -> RunReport:
    d = Deliverer(settings, store, retry=retry)
    try:
        return run_once(settings, store, subs, deliverer=d)
    finally:
        d.close()


@pytest.mark.parametrize(
    "replies",
    [
        ["421 4.7.0 too busy, come back later"],
        ["451 4.3.0 try again later", "451 4.3.0 still busy"],
    ],
)
def test_smtp_4xx_then_success_is_delivered_once(tmp_path: Path, replies: list[str]) -> None:
    with SmtpPeer(SmtpScript(data_replies=list(replies))) as smtp:
        settings, store = world(tmp_path, smtp_url=smtp.url)
        report = run(settings, store, [reader(1)])
    assert [o.status for o in report.outcomes] == ["sent"]
    assert [m.to for m in smtp.mails] == [("r1@example.org",)]
    row = store.digests_with_status("sent")[0]
    assert row.attempts == len(replies) + 1
    assert smtp.mails[0].message_id == f"<{row.id}@lab.example>"


def test_smtp_550_fails_that_digest_with_its_reason_and_the_others_are_delivered(
    tmp_path: Path,
) -> None:
    with SmtpPeer(SmtpScript(refuse={"r2@example.org"})) as smtp:
        settings, store = world(tmp_path, smtp_url=smtp.url)
        report = run(settings, store, [reader(1), reader(2), reader(3)])
    assert {o.subscriber: o.status for o in report.outcomes} == {
        "r1": "sent",
        "r2": "failed",
        "r3": "sent",
    }
    assert sorted(m.to[0] for m in smtp.mails) == ["r1@example.org", "r3@example.org"]
    failed = store.digests_with_status("failed")
    assert [r.subscriber_id for r in failed] == ["r2"]
    assert "550" in failed[0].reason and "no such user" in failed[0].reason
    assert store.delivered(["r2"]) == {"r2": set()}  # its entries are free for a later digest


def test_connection_dropped_mid_data_is_delivered_once_after_retry(tmp_path: Path) -> None:
    with SmtpPeer(SmtpScript(data_replies=["drop"])) as smtp:
        settings, store = world(tmp_path, smtp_url=smtp.url)
        report = run(settings, store, [reader(1), reader(2)])
    assert [o.status for o in report.outcomes] == ["sent", "sent"]
    assert smtp.data_seen == 3  # the dropped one, its retry, the second reader
    assert sorted(m.to[0] for m in smtp.mails) == ["r1@example.org", "r2@example.org"]
    assert len({m.message_id for m in smtp.mails}) == 2


def test_retries_used_up_stay_pending_and_the_next_run_sends_it(tmp_path: Path) -> None:
    with SmtpPeer(SmtpScript(data_replies=["451 4.3.0 later"] * 2)) as smtp:
        settings, store = world(tmp_path, smtp_url=smtp.url)
        first = run(settings, store, [reader(1)], retry=RetryPolicy(attempts=2, base=0.01))
        assert [o.status for o in first.outcomes] == ["pending"]
        row = store.digests_with_status("pending")[0]
        assert row.owner == "" and "451" in row.reason  # let go: any next run may take it
        second = run(settings, store, [reader(1)])
    assert [o.status for o in second.recovered] == ["sent"]
    assert second.outcomes[0].status == "not-due"
    assert len(smtp.mails) == 1 and smtp.mails[0].digest == row.id


def test_a_digest_left_pending_by_a_dead_process_is_resent_with_its_message_id(
    tmp_path: Path,
) -> None:
    with SmtpPeer() as smtp:
        settings, store = world(tmp_path, smtp_url=smtp.url)
        slot = datetime(2026, 11, 28, 8, tzinfo=UTC)
        dead = f"{socket.gethostname()}:{2**22 + 17}"  # beyond pid_max: no such process
        claimed = store.claim("r1", slot, [], "email", owner=dead)
        assert claimed is not None
        empty = store.get_digest(claimed.digest_id)
        assert empty is not None and empty.status == "empty"
        items = plan_digests(settings, store, [reader(2)], NOW).plans[0].items
        resent = store.claim("r2", slot, items, "email", owner=dead)
        assert resent is not None
        did = resent.digest_id
        report = run(settings, store, [reader(2)])
    assert [(o.subscriber, o.status) for o in report.recovered] == [("r2", "sent")]
    assert [m.message_id for m in smtp.mails] == [f"<{did}@lab.example>"]


def test_a_live_process_on_another_host_keeps_its_digest_until_its_lease_ends(
    tmp_path: Path,
) -> None:
    settings, store = world(tmp_path)
    items = plan_digests(settings, store, [reader(1)], NOW).plans[0].items
    claimed = store.claim(
        "r1",
        NOW - timedelta(hours=1),
        items,
        "outbox",
        owner="elsewhere:42",
        lease=timedelta(minutes=5),
    )
    assert claimed is not None
    did = claimed.digest_id
    assert run(settings, store, [reader(1)]).recovered == []
    with store.begin() as conn:
        conn.execute(
            text("UPDATE digests SET lease_until = :t"),
            {"t": (NOW - timedelta(minutes=1)).replace(tzinfo=None)},
        )
    assert [o.status for o in run(settings, store, [reader(1)]).recovered] == ["sent"]
    row = store.get_digest(did)
    assert row is not None and row.owner == owner_token()


def test_a_sender_whose_lease_was_taken_over_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SmtpPeer() as smtp:
        settings, store = world(tmp_path, smtp_url=smtp.url)
        d = Deliverer(settings, store, retry=FAST, lease=timedelta(0))  # renew before every try
        plan = plan_digests(settings, store, [reader(1)], NOW).plans[0]
        claimed = store.claim("r1", plan.slot, plan.items, "email", owner=d.owner)
        assert claimed is not None
        did = claimed.digest_id
        assert store.take_over(did, d.owner, "elsewhere:42", timedelta(minutes=5), seen=ANY_LEASE)
        time.sleep(0.01)
        out = d.send(Digest(did, reader(1), plan.slot, claimed.items), "email")
        d.close()
    assert out.status == "skipped" and "taken over" in out.reason
    assert smtp.mails == []


@pytest.mark.slow
def test_sqlite_busy_waits_for_the_other_writer(tmp_path: Path) -> None:
    with SmtpPeer() as smtp:
        settings, store = world(tmp_path, smtp_url=smtp.url)
        held = threading.Event()

        def writer() -> None:
            other = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(1.5)
            other.execute("COMMIT")
            other.close()

        t = threading.Thread(target=writer)
        t.start()
        held.wait()
        started = time.monotonic()
        report = run(settings, store, [reader(1)])
        t.join()
    assert time.monotonic() - started >= 1.4  # it waited for the lock instead of failing
    assert [o.status for o in report.outcomes] == ["sent"] and len(smtp.mails) == 1


@pytest.mark.slow
def test_slack_429_with_retry_after_is_posted_once_no_sooner(tmp_path: Path) -> None:
    with SlackPeer({"chat.postMessage": [Reply.ratelimited(2)]}) as slack:
        settings, store = world(tmp_path, slack_token="xoxb-test", slack_api_url=slack.url)
        report = run(settings, store, [reader(1, email="", slack="C0001")])
    assert [o.status for o in report.outcomes] == ["sent"]
    assert len(slack.posted) == 1 and len(slack.rejected) == 1
    assert slack.posted[0]["at"] - slack.rejected[0] >= 2.0


def test_slack_recovery_finds_the_post_in_history_and_does_not_post_again(tmp_path: Path) -> None:
    with SlackPeer() as slack:
        settings, store = world(tmp_path, slack_token="xoxb-test", slack_api_url=slack.url)
        sub = reader(1, email="", slack="C0001")
        d = Deliverer(settings, store, retry=FAST)
        plan = plan_digests(settings, store, [sub], NOW).plans[0]
        dead = f"{socket.gethostname()}:{2**22 + 17}"
        claimed = store.claim(sub.id, plan.slot, plan.items, "slack", owner=dead)
        assert claimed is not None
        d.channel("slack").send(
            Digest(claimed.digest_id, sub, plan.slot, claimed.items)
        )  # posted, then "crashed"
        d.close()
        report = run(settings, store, [sub])
    assert [(o.status, o.reason) for o in report.recovered] == [("sent", "recovered")]
    assert len(slack.posted) == 1 and len(slack.calls("conversations.history")) == 1


@pytest.mark.parametrize("crash", [False, True], ids=["5xx-through-the-run", "crash"])
def test_a_slack_thread_cut_short_is_finished_in_its_thread_by_the_next_run(
    tmp_path: Path, crash: bool
) -> None:
    """40 papers are three Slack messages; part 2 fails through all of run 1's retries (Slack
    5xx), or run 1 dies after part 1. Run 2 finds part 1, reads its thread and posts parts 2 and
    3 there, once each; only then is the digest sent."""
    from _digests import digest, subscriber

    sub = subscriber(email="", slack_channel="#papers")
    with SlackPeer() as slack:
        settings, store = world(tmp_path, slack_token="xoxb-test", slack_api_url=slack.url)
        d = digest(40, sub=sub)
        store.upsert_entries([i.entry for i in d.items])
        owner = f"{socket.gethostname()}:{2**22 + 17}" if crash else "run1"  # a dead process
        claimed = store.claim(sub.id, d.slot, d.items, "slack", owner=owner)
        assert claimed is not None
        d = Digest(claimed.digest_id, sub, d.slot, claimed.items)
        # Part 1 is posted (None: the usual answer); then Slack answers 502 to every try.
        bad = Reply(502, b"bad gateway", {"content-type": "text/plain"})
        slack.script["chat.postMessage"] = [None, *[bad] * 20]
        first = Deliverer(settings, store, retry=RetryPolicy(attempts=2, base=0.01, cap=0.01))
        first.owner = owner
        if crash:
            with pytest.raises(TransientSendError):
                first.channel("slack").send(d)  # part 1 posted, then "killed"
        else:
            assert first.send(d, "slack").status == "pending"
        first.close()
        assert [p["metadata"]["event_payload"]["part"] for p in slack.posted] == [1]
        slack.script["chat.postMessage"] = []  # Slack is fine again
        second = Deliverer(settings, store, retry=FAST)
        out = second.recover([sub])
        second.close()
        (row,) = store.digests_with_status("sent", "pending")
        store.close()
    parts = [p["metadata"]["event_payload"] for p in slack.posted]
    assert [(p["part"], p["parts"]) for p in parts] == [(1, 3), (2, 3), (3, 3)]
    top = slack.posted[0]["ts"]
    assert [p["thread_ts"] for p in slack.posted] == [None, top, top]
    assert [o.status for o in out] == ["sent"] and row.status == "sent"
    assert row.receipt != "found delivered after a restart"
    (replies,) = slack.calls("conversations.replies")
    assert replies["body"]["ts"] == top


@pytest.mark.postgres
def test_postgres_connection_killed_between_runs_reconnects(tmp_path: Path) -> None:
    with pg_schema() as (url, schema, admin), SmtpPeer() as smtp:
        settings, store = world(tmp_path, smtp_url=smtp.url, database_url=url)
        assert [o.status for o in run(settings, store, [reader(1)]).outcomes] == ["sent"]
        with admin.begin() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :a"
                ),
                {"a": schema},
            ).scalar()
        assert killed >= 1
        store.upsert_entries(
            [Entry(id="arxiv:2611.09999", title="Quantization again", published=NOW)]
        )
        assert [o.status for o in run(settings, store, [reader(2)]).outcomes] == ["sent"]
        store.close()
    assert len(smtp.mails) == 2


@pytest.mark.postgres
def test_postgres_connection_dropped_inside_a_ledger_transaction_is_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import event

    with pg_schema() as (url, _schema, admin):
        settings, store = world(tmp_path, database_url=url)
        plan = plan_digests(settings, store, [reader(1)], NOW).plans[0]
        claimed = store.claim("r1", plan.slot, plan.items, "outbox", owner="me:1")
        assert claimed is not None
        did = claimed.digest_id
        killed: list[int] = []

        def kill_first_update(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
            if statement.startswith("UPDATE digests") and not killed:
                pid = conn.connection.dbapi_connection.info.backend_pid
                with admin.begin() as a:
                    a.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                killed.append(pid)
                time.sleep(0.3)

        event.listen(store.engine, "before_cursor_execute", kill_first_update)
        store.mark_sent(did, "receipt")
        row = store.get_digest(did)
        store.close()
    assert killed and row is not None and row.status == "sent"
    assert "trying again" in caplog.text


def test_an_unexpected_error_in_one_digest_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.channels.outbox import Outbox

    settings, store = world(tmp_path)
    real = Outbox.send

    def flaky(self: Outbox, digest: Digest) -> Receipt:
        if digest.subscriber.id == "r1":
            raise KeyError("a bug")
        return real(self, digest)

    monkeypatch.setattr(Outbox, "send", flaky)
    report = run(settings, store, [reader(1), reader(2)])
    assert [(o.subscriber, o.status) for o in report.outcomes] == [
        ("r1", "pending"),
        ("r2", "sent"),
    ]
    assert "KeyError" in store.digests_with_status("pending")[0].reason
    monkeypatch.setattr(Outbox, "send", real)
    assert [(o.subscriber, o.status) for o in run(settings, store, [reader(1)]).recovered] == [
        ("r1", "sent")
    ]


def test_the_preview_holds_what_the_run_then_sends(tmp_path: Path) -> None:
    settings, store = world(tmp_path)
    sub = reader(1)
    preview = next_digest(settings, store, sub, NOW)
    assert store.history(sub.id) == []  # a preview records nothing
    [outcome] = run(settings, store, [sub]).outcomes
    row = store.get_digest(outcome.digest_id)
    assert outcome.status == "sent" and row is not None
    assert [i.entry.id for i in store.digest_items(row.id)] == [i.entry.id for i in preview.items]
    assert len(preview.items) == 3 and preview.more == row.more
