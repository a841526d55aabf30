"""The pool never posts a Slack digest twice and never holds a digest back for hours: a digest
that may have been tried is looked for before it is sent again, a send that outlasts its lease
keeps it, a take-over does not go by a stale lease, and a claim the dispatcher could not
confirm or enqueue is queued again soon. Real PostgreSQL, Redis and a local Slack."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _pool import REDIS_URL, entries, redis_queue, subscribers
from click.testing import CliRunner
from peers import Reply, SlackPeer, free_port, wait_for

from bot.channels import CHANNELS
from bot.cli import cli
from bot.config import Settings
from bot.errors import BotError, StoreError
from bot.models import Digest, DigestItem, Outcome, Subscriber
from bot.pool import (
    ENQUEUE_LEASE,
    QUEUED,
    REQUEUED,
    PoolDeliverer,
    dispatch_due,
    make_app,
    queue_length,
    requeue_stalled,
)
from bot.pool.worker import run_task
from bot.store import ANY_LEASE, Store


@pytest.fixture
def queue() -> Iterator[str]:
    yield from redis_queue()


@pytest.fixture
def slack() -> Iterator[SlackPeer]:
    with SlackPeer() as peer:
        yield peer


def _settings(pg_url: str, queue: str, slack: SlackPeer, broker: str = REDIS_URL) -> Settings:
    return Settings(
        database_url=pg_url,
        broker_url=broker,
        ratelimit_url=REDIS_URL,
        queue=queue,
        slack_token="xoxb-test",
        slack_api_url=slack.url,
        from_addr="digestbot <digest@example.org>",
    )


def _slack_sub() -> Subscriber:
    return replace(subscribers(1)[0], email="", slack_channel="C0001")


Pool = tuple[Settings, Store, Subscriber]


@pytest.fixture
def pool(pg_url: str, queue: str, slack: SlackPeer) -> Iterator[Pool]:
    """A pool's settings, its store (closed afterwards) and a Slack channel subscriber."""
    store = Store(pg_url)
    try:
        yield _settings(pg_url, queue, slack), store, _slack_sub()
    finally:
        store.close()


def _claim(store: Store, sub: Subscriber, owner: str, lease: timedelta) -> Digest:
    now = datetime.now(UTC)
    items = entries(3, now)
    store.upsert_entries(items, now)
    slot = now.replace(second=0, microsecond=0)
    claimed = store.claim(
        sub.id, slot, [DigestItem(e, 0.5) for e in items], "slack", owner=owner, lease=lease
    )
    assert claimed is not None
    return Digest(claimed.digest_id, sub, slot, claimed.items)


def _post(settings: Settings, digest: Digest) -> None:
    """A worker posted it, then died before confirming it."""
    channel = CHANNELS["slack"](settings)
    try:
        channel.send(digest)
    finally:
        channel.close()


def _posts(slack: SlackPeer, did: str) -> int:
    return sum(
        1
        for p in slack.posted
        if (p["metadata"] or {}).get("event_payload", {}).get("digest_id") == did
    )


def _dead_owner() -> str:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return f"{socket.gethostname()}:{gone.pid}"


def test_a_digest_queued_again_after_its_worker_died_is_looked_for_not_posted_twice(
    slack: SlackPeer, pool: Pool
) -> None:
    settings, store, sub = pool
    # A worker on another host posted it and was killed before confirming; its lease ran out.
    digest = _claim(store, sub, "worker-host-2:4242", timedelta(seconds=-1))
    _post(settings, digest)
    assert requeue_stalled(settings, store, [sub], make_app(settings)) == 1
    row = store.get_digest(digest.id)
    assert row is not None and row.owner == REQUEUED
    d = PoolDeliverer(settings, store)
    try:
        out = d.handle(digest.id, sub)
    finally:
        d.close()
    assert (out.status, out.reason) == ("sent", "recovered")
    assert len(slack.calls("conversations.history")) == 1
    assert _posts(slack, digest.id) == 1
    row = store.get_digest(digest.id)
    assert row is not None and row.status == "sent"


def test_a_fresh_digest_from_the_queue_is_posted_without_a_history_lookup(
    slack: SlackPeer, pool: Pool
) -> None:
    settings, store, sub = pool
    digest = _claim(store, sub, QUEUED, timedelta(hours=2))
    d = PoolDeliverer(settings, store)
    try:
        assert d.handle(digest.id, sub).status == "sent"
    finally:
        d.close()
    assert slack.calls("conversations.history") == [] and _posts(slack, digest.id) == 1


def test_a_worker_restarted_with_the_same_token_looks_before_posting(
    slack: SlackPeer, pool: Pool
) -> None:
    """A container restarted in place (same host name, PID 1 again): the dead worker's token."""
    settings, store, sub = pool
    d = PoolDeliverer(settings, store)
    try:
        digest = _claim(store, sub, d.owner, timedelta(minutes=5))
        _post(settings, digest)
        out = d.handle(digest.id, sub)  # the task, redelivered to the restarted worker
    finally:
        d.close()
    assert (out.status, out.reason) == ("sent", "recovered")
    assert _posts(slack, digest.id) == 1


def test_a_task_retried_after_its_confirm_failed_does_not_post_again(
    slack: SlackPeer, pool: Pool
) -> None:
    """The database is away when the worker confirms a posted digest (the store's retries used
    up: a StoreError); Celery retries the task in the same worker, which finds the post."""
    settings, store, sub = pool
    digest = _claim(store, sub, QUEUED, timedelta(hours=2))
    real = store.mark_sent
    failures = iter([StoreError("the database failed (server closed the connection)")])

    def mark_sent(*args: Any, **kwargs: Any) -> bool:
        for e in failures:
            raise e
        return real(*args, **kwargs)

    store.mark_sent = mark_sent  # type: ignore[method-assign]

    class Retry(Exception):
        pass

    def retry(countdown: float = 0, exc: Exception | None = None) -> Retry:
        return Retry(countdown)

    deliverer = PoolDeliverer(settings, store)
    app = types.SimpleNamespace(digestbot_settings=settings, digestbot_deliverer=deliverer)
    task = types.SimpleNamespace(app=app, request=types.SimpleNamespace(retries=0), retry=retry)
    try:
        with pytest.raises(Retry):
            run_task(task, digest.id, sub.to_dict())
        assert run_task(task, digest.id, sub.to_dict()) == "sent"
    finally:
        deliverer.close()
    assert _posts(slack, digest.id) == 1


def test_a_worker_that_cannot_read_the_history_waits_instead_of_posting(
    pg_url: str, queue: str, slack: SlackPeer
) -> None:
    settings = _settings(pg_url, queue, slack)
    store = Store(pg_url)
    sub = _slack_sub()
    digest = _claim(store, sub, _dead_owner(), timedelta(minutes=5))
    _post(settings, digest)
    slack.script["conversations.history"] = [
        Reply(200, b'{"ok":false,"error":"internal_error"}')
    ] * 3
    d = PoolDeliverer(settings, store)
    try:
        out = d.handle(digest.id, sub)
        assert out.status == "pending" and "could not check whether it was delivered" in out.reason
        did = digest.id
        assert d.release(did)
        row = store.get_digest(did)
        assert row is not None and (row.status, row.owner) == ("pending", REQUEUED)
        assert _posts(slack, did) == 1
        slack.script["conversations.history"] = []  # Slack answers again: the retry finds it
        assert (d.handle(did, sub).status, _posts(slack, did)) == ("sent", 1)
    finally:
        d.close()
    store.close()


WORKER_B = r"""
import json, sys
from bot.config import Settings
from bot.models import Subscriber
from bot.pool import PoolDeliverer
from bot.store import Store
url, redis, queue, api, did, sub = sys.argv[1:7]
settings = Settings(database_url=url, broker_url=redis, ratelimit_url=redis, queue=queue,
                    slack_token="xoxb-test", slack_api_url=api,
                    from_addr="digestbot <digest@example.org>")
d = PoolDeliverer(settings, Store(url))
print("ready", flush=True)
sys.stdin.readline()
out = d.handle(did, Subscriber.from_dict(json.loads(sub)))
print(out.status, out.reason, flush=True)
"""


def test_a_send_that_outlasts_its_lease_keeps_it_and_is_not_posted_twice(
    pg_url: str, queue: str
) -> None:
    """Worker A waits out Slack's Retry-After inside one send, longer than its lease (2 s here,
    for the 5-minute LEASE); its lease is renewed meanwhile, so the dispatcher's tick does not
    queue the digest again and worker B (another process) leaves it alone."""
    with SlackPeer({"chat.postMessage": [Reply.ratelimited(3), Reply.ratelimited(3)]}) as slack:
        settings = _settings(pg_url, queue, slack)
        store = Store(pg_url)
        sub = _slack_sub()
        digest = _claim(store, sub, QUEUED, timedelta(hours=2))
        with subprocess.Popen(
            [sys.executable, "-c", WORKER_B, pg_url, REDIS_URL, queue, slack.url, digest.id]
            + [json.dumps(sub.to_dict())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        ) as b:
            assert b.stdin is not None and b.stdout is not None
            assert b.stdout.readline().strip() == "ready"
            a = PoolDeliverer(settings, store, lease=timedelta(seconds=2))
            out: list[Outcome] = []
            t = threading.Thread(target=lambda: out.append(a.handle(digest.id, sub)))
            t.start()
            try:
                wait_for(lambda: len(slack.calls("chat.postMessage")) >= 2, 30, "the second 429")
                # A is in its second Retry-After, 3 s or more since it took the digest: a lease
                # of 2 s taken then and never renewed has run out by now.
                assert requeue_stalled(settings, store, [sub], make_app(settings)) == 0
                b.stdin.write("go\n")
                b.stdin.flush()
                assert b.stdout.readline().startswith("skipped")
            finally:
                t.join()
                b.stdin.close()
                a.close()
        assert out[0].status == "sent" and _posts(slack, digest.id) == 1
        store.close()


def test_a_confirm_after_the_digest_was_taken_over_does_not_count(pg_url: str) -> None:
    store = Store(pg_url)
    sub = subscribers(1)[0]
    digest = _claim(store, sub, "host-a:100", timedelta(minutes=5))
    a = store.get_digest(digest.id)
    assert a is not None
    assert store.take_over(
        digest.id, "host-a:100", "host-b:200", timedelta(minutes=5), seen=a.lease_until
    )
    assert not store.mark_sent(digest.id, "250 ok", owner="host-a:100")
    assert not store.mark_failed(digest.id, "550 no", owner="host-a:100")
    row = store.get_digest(digest.id)
    assert row is not None and (row.status, row.owner) == ("pending", "host-b:200")
    assert store.digest_items(digest.id)  # its entries are still its own
    assert store.mark_sent(digest.id, "250 ok", owner="host-b:200")
    store.close()


@pytest.mark.parametrize("backend_url", ["sqlite", "postgres"], indirect=True)
def test_take_over_goes_by_the_lease_it_was_decided_on(backend_url: str) -> None:
    """B reads A's row (its lease ran out); A renews it; B's take-over no longer succeeds."""
    store = Store(backend_url)
    digest = _claim(store, subscribers(1)[0], "host-a:100", timedelta(seconds=-1))
    row = store.get_digest(digest.id)
    assert row is not None and row.lease_until is not None
    assert store.renew(digest.id, "host-a:100", timedelta(minutes=5))
    assert not store.take_over(
        digest.id, "host-a:100", "host-b:200", timedelta(minutes=5), seen=row.lease_until
    )
    fresh = store.get_digest(digest.id)
    assert fresh is not None and fresh.owner == "host-a:100"
    # On the lease it has now, the take-over goes through; repeated, it still says so.
    for _ in range(2):
        assert store.take_over(
            digest.id, "host-a:100", "host-b:200", timedelta(minutes=5), seen=fresh.lease_until
        )
    # The queue re-queuing its own (old owner = new owner): the lease read decides, so two
    # dispatchers reading the same row do not both put it in the queue again.
    assert store.take_over(digest.id, "host-b:200", QUEUED, timedelta(minutes=5), seen=ANY_LEASE)
    queued = store.get_digest(digest.id)
    assert queued is not None
    assert store.take_over(digest.id, QUEUED, QUEUED, timedelta(minutes=6), seen=queued.lease_until)
    assert not store.take_over(
        digest.id, QUEUED, QUEUED, timedelta(minutes=7), seen=queued.lease_until
    )
    store.close()


def test_a_claim_whose_commit_was_acknowledged_late_is_still_queued(
    pg_url: str, queue: str, slack: SlackPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """claim_many's transaction commits, the acknowledgement is lost, the store runs it again:
    the digests it made are this dispatcher's and go into the queue now, not 2 hours later."""
    import psycopg

    from bot.pool import dispatch

    settings = _settings(pg_url, queue, slack)
    store = Store(pg_url)
    now = datetime.now(UTC)
    store.upsert_entries(entries(6, now), now)
    dialect = store.engine.dialect
    commit = dialect.do_commit
    lost = iter([psycopg.OperationalError("server closed the connection unexpectedly")])

    def commit_then_lose_the_ack(conn: Any) -> None:
        commit(conn)
        for e in lost:
            raise e

    plan = dispatch.plan_digests

    def plan_then_fail(*args: Any, **kwargs: Any) -> Any:
        plans = plan(*args, **kwargs)
        monkeypatch.setattr(dialect, "do_commit", commit_then_lose_the_ack)  # the next commit
        return plans

    monkeypatch.setattr(dispatch, "plan_digests", plan_then_fail)
    app = make_app(settings)
    report = dispatch.DispatchReport()
    assert dispatch_due(settings, store, subscribers(3), now, app, report) == 3
    assert (report.skipped, queue_length(app, queue)) == (0, 3)
    rows = store.digests_with_status("pending")
    assert len(rows) == 3 and all(
        r.lease_until and r.lease_until > now + ENQUEUE_LEASE for r in rows
    )
    store.close()


def test_digests_claimed_when_the_broker_failed_are_queued_again_minutes_later(
    pg_url: str, queue: str, slack: SlackPeer
) -> None:
    settings = _settings(pg_url, queue, slack)
    down = replace(settings, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    store = Store(pg_url)
    now = datetime.now(UTC)
    store.upsert_entries(entries(6, now), now)
    subs = subscribers(3)
    with pytest.raises(BotError, match="DIGESTBOT_BROKER_URL"):
        dispatch_due(down, store, subs, now, make_app(down))
    rows = store.digests_with_status("pending")
    assert len(rows) == 3 and all(r.owner == QUEUED for r in rows)
    app = make_app(settings)
    assert requeue_stalled(settings, store, subs, app) == 0  # within ENQUEUE_LEASE
    later = datetime.now(UTC) + ENQUEUE_LEASE + timedelta(seconds=1)
    assert requeue_stalled(settings, store, subs, app, now=later) == 3
    assert queue_length(app, queue) == 3
    assert {r.owner for r in store.digests_with_status("pending")} == {QUEUED}  # never tried
    store.close()


def test_run_once_workers_celery_with_the_broker_down_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subscriptions").mkdir()
    (tmp_path / "digestbot.toml").write_text('subscriptions_dir = "subscriptions"\n')
    broker = f"redis://127.0.0.1:{free_port()}/0"
    result = CliRunner().invoke(
        cli,
        ["run", "--once", "--workers", "celery"],
        env={"DIGESTBOT_BROKER_URL": broker, "DIGESTBOT_DATABASE_URL": pg_url},
    )
    assert result.exit_code == 1, result.output
    assert f"the broker {broker} failed" in result.output
    assert "check DIGESTBOT_BROKER_URL" in result.output and "Traceback" not in result.output
