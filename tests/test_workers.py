"""The pool's parts in one process: refusing SQLite, the payload, take-over, the shared rate limit, status."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _pool import REDIS_URL, ROOT, entries, redis_queue, subscribers
from click.testing import CliRunner
from peers import SmtpPeer, SmtpScript

from bot.channels import Channel
from bot.cli import cli
from bot.config import Settings, load_settings
from bot.errors import BotError
from bot.models import Digest, DigestItem, Receipt, Subscriber
from bot.pool import (
    QUEUED,
    REQUEUED,
    PoolDeliverer,
    QueuedDigest,
    RateLimited,
    dispatch_tick,
    enqueue,
    make_app,
    pool_status,
    queue_length,
    requeue_stalled,
    require_pool,
    restore_unacked,
)
from bot.pool.worker import DOWN_FOR
from bot.store import Store, digest_id


@pytest.fixture
def queue() -> Iterator[str]:
    yield from redis_queue()


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    s = Store(pg_url)
    yield s
    s.close()


def _settings(pg_url: str, queue: str, smtp_server: SmtpPeer, rate: float = 1000.0) -> Settings:
    return Settings(
        database_url=pg_url,
        broker_url=REDIS_URL,
        ratelimit_url=REDIS_URL,
        queue=queue,
        smtp_url=smtp_server.url,
        smtp_rate=rate,
        from_addr="digestbot <digest@example.org>",
    )


def _claim(
    store: Store, sub_index: int = 0, owner: str = QUEUED, lease: timedelta = timedelta(minutes=30)
) -> str:
    now = datetime.now(UTC)
    items = entries(3, now)
    store.upsert_entries(items, now)
    sub = subscribers(sub_index + 1)[sub_index]
    slot = now.replace(second=0, microsecond=0)
    claimed = store.claim(
        sub.id, slot, [DigestItem(e, 0.5) for e in items], "email", owner=owner, lease=lease
    )
    assert claimed is not None
    return claimed.digest_id


def test_the_pool_refuses_sqlite_and_says_the_fix() -> None:
    with pytest.raises(BotError) as e:
        require_pool(Settings(broker_url="redis://127.0.0.1:6379/0"))
    assert (
        "the worker pool needs PostgreSQL, but the store is SQLite (sqlite:///digestbot.db)"
        in str(e.value)
    )
    assert "set DIGESTBOT_DATABASE_URL=postgresql+psycopg://" in str(e.value)
    with pytest.raises(BotError, match="no broker for the worker pool; set DIGESTBOT_BROKER_URL"):
        require_pool(Settings(database_url="postgresql+psycopg://u@h/db"))


def test_the_worker_command_refuses_sqlite(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["worker"],
        env={
            "DIGESTBOT_BROKER_URL": "redis://127.0.0.1:6379/9",
            "DIGESTBOT_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        },
    )
    assert result.exit_code == 1
    assert "the worker pool needs PostgreSQL, but the store is SQLite" in result.output


def test_broker_url_and_queue_come_from_the_environment() -> None:
    s = load_settings(
        environ={"DIGESTBOT_BROKER_URL": "amqp://guest:secret@mq:5672//", "DIGESTBOT_QUEUE": "lab"}
    )
    assert (s.broker_url, s.queue, s.ratelimit_url) == ("amqp://guest:secret@mq:5672//", "lab", "")
    assert "secret" not in repr(s)


def test_a_subscriber_survives_the_task_message() -> None:
    sub = replace(subscribers(1)[0], slack_channel="#x")
    import json

    data = json.loads(json.dumps(sub.to_dict()))
    assert Subscriber.from_dict(data) == sub
    assert Subscriber.from_dict({**data, "a_newer_field": 1}) == sub  # from a newer scheduler


def test_a_digest_handled_twice_is_sent_once(
    store: Store, smtp_server: SmtpPeer, pg_url: str
) -> None:
    did = _claim(store)
    settings = _settings(pg_url, "unused", smtp_server)
    sub = subscribers(1)[0]
    first, second = PoolDeliverer(settings, store), PoolDeliverer(settings, store)
    try:
        assert first.handle(did, sub).status == "sent"
        again = second.handle(did, sub)
        assert (again.status, again.reason) == ("skipped", "already sent")
    finally:
        first.close()
        second.close()
    assert [m.message_id for m in smtp_server.mails] == [f"<{did}@example.org>"]


def test_a_digest_held_by_a_live_worker_is_left_to_it(
    store: Store, smtp_server: SmtpPeer, pg_url: str
) -> None:
    import os
    import socket

    live = f"{socket.gethostname()}:{os.getppid()}"
    did = _claim(store, owner=live, lease=timedelta(minutes=5))
    d = PoolDeliverer(_settings(pg_url, "unused", smtp_server), store)
    try:
        out = d.handle(did, subscribers(1)[0])
    finally:
        d.close()
    assert (out.status, out.reason) == ("skipped", f"in flight on {live}")
    assert smtp_server.count() == 0


def test_a_digest_held_by_a_dead_worker_is_taken_over_at_once(
    store: Store, smtp_server: SmtpPeer, pg_url: str
) -> None:
    import socket

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    did = _claim(store, owner=f"{socket.gethostname()}:{gone.pid}", lease=timedelta(minutes=5))
    d = PoolDeliverer(_settings(pg_url, "unused", smtp_server), store)
    try:
        assert d.handle(did, subscribers(1)[0]).status == "sent"
    finally:
        d.close()
    row = store.get_digest(did)
    assert row is not None and (row.status, row.owner) == ("sent", d.owner)
    assert [m.message_id for m in smtp_server.mails] == [f"<{did}@example.org>"]


_TAKER = """
import sys, time
from bot.pool.ratelimit import SharedRateLimiter
lim = SharedRateLimiter(sys.argv[1], sys.argv[2], float(sys.argv[3]))
start = float(sys.argv[4])
time.sleep(max(0, start - time.time()))
for _ in range(int(sys.argv[5])):
    lim.acquire()
    print(time.time(), flush=True)
"""


@pytest.mark.slow
def test_the_rate_limit_holds_for_two_processes_together(queue: str) -> None:
    # Two processes take 15 tokens each from one 20/s bucket: 30 tokens need ≥ 1.45 s together;
    # a per-process limit would let them finish in about 0.7 s.
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _TAKER,
                REDIS_URL,
                f"{queue}:rate:email",
                "20",
                str(start),
                "15",
            ],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    stamps = sorted(float(line) for p in procs for line in p.communicate(timeout=30)[0].split())
    assert all(p.returncode == 0 for p in procs)
    assert len(stamps) == 30
    assert stamps[-1] - stamps[0] >= 29 / 20 - 0.05
    for i in range(len(stamps) - 20):  # no window shorter than a second holds 21
        assert stamps[i + 20] - stamps[i] >= 1.0 - 0.05


def test_status_counts_waiting_running_stalled_and_failed(
    store: Store, smtp_server: SmtpPeer, pg_url: str, queue: str
) -> None:
    import os
    import socket

    settings = _settings(pg_url, queue, smtp_server)
    _claim(store, 0)  # waiting in the queue
    _claim(
        store, 1, owner=f"{socket.gethostname()}:{os.getpid()}", lease=timedelta(minutes=5)
    )  # running
    _claim(store, 2, owner="elsewhere:1", lease=timedelta(seconds=-1))  # lease ran out: stalled
    failed = _claim(store, 3)
    store.mark_failed(failed, "SMTP answered 550 no such user")
    app = make_app(settings)
    st = pool_status(settings, store, app, ping_timeout=0.2)
    assert (st.queued, st.workers, st.waiting, st.running, st.stalled, st.pending, st.failed) == (
        0,
        0,
        1,
        1,
        1,
        3,
        1,
    )
    assert [r.id for r in st.recent_failures] == [failed]

    env = {
        "DIGESTBOT_DATABASE_URL": pg_url,
        "DIGESTBOT_BROKER_URL": REDIS_URL,
        "DIGESTBOT_QUEUE": queue,
    }
    result = CliRunner().invoke(cli, ["status", "--pool"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Worker pool:\n"
        f"  queued:  0 (tasks waiting in '{queue}')\n"
        "  workers: 0 answering\n"
        "  running: 1\n"
        "  pending: 3 (1 waiting for a worker, 1 running, 1 stalled: re-enqueued on the next tick)\n"
        "  failed:  1\n"
        f"    {failed}: SMTP answered 550 no such user\n"
    )
    row = store.get_digest(failed)  # (the minute may have turned since it was claimed)
    assert row is not None and digest_id("s00003", row.slot) == failed


def test_a_stalled_digest_goes_back_to_the_queue_once(
    store: Store, smtp_server: SmtpPeer, pg_url: str, queue: str
) -> None:
    import socket

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    settings = _settings(pg_url, queue, smtp_server)
    dead = _claim(store, 0, owner=f"{socket.gethostname()}:{gone.pid}", lease=timedelta(minutes=5))
    _claim(store, 1)  # waiting in the queue, within its lease: left alone
    app = make_app(settings)
    assert requeue_stalled(settings, store, subscribers(2), app) == 1
    row = store.get_digest(dead)
    assert row is not None and row.owner == REQUEUED  # its worker may have sent it: look first
    assert queue_length(app, queue) == 1
    assert (
        requeue_stalled(settings, store, subscribers(2), app) == 0
    )  # now queued, within its lease


def test_a_transient_failure_gives_the_digest_back_to_the_queue(store: Store, pg_url: str) -> None:
    with SmtpPeer(SmtpScript(data_replies=["451 try again later"] * 99)) as busy:
        did = _claim(store)
        settings = _settings(pg_url, "unused", busy)
        d = PoolDeliverer(settings, store)
        try:
            out = d.handle(did, subscribers(1)[0])
            assert out.status == "pending" and "451 try again later" in out.reason
            assert d.release(did)
        finally:
            d.close()
    row = store.get_digest(did)
    assert row is not None and (row.status, row.owner, row.attempts) == ("pending", REQUEUED, 1)


def test_a_worker_tries_a_channel_found_down_again_after_a_while_not_on_every_digest(
    store: Store, pg_url: str
) -> None:
    """A worker lives for days: a refused login marks email down for DOWN_FOR seconds, not until
    the worker restarts. Meanwhile its digests wait untried; then one digest tries again (one
    AUTH) and, the password mended, every waiting digest goes."""
    with SmtpPeer(users={"digest": "new-password"}) as smtp:
        settings = replace(
            _settings(pg_url, "unused", smtp),
            smtp_url=f"smtp://digest@127.0.0.1:{smtp.port}",
            smtp_password="old-password",
        )
        subs = subscribers(4)
        dids = [_claim(store, i) for i in range(4)]
        now = [1000.0]
        d = PoolDeliverer(settings, store, clock=lambda: now[0])

        def handle(i: int) -> tuple[str, str]:
            out = d.handle(dids[i], subs[i])
            if out.status == "pending":
                assert d.release(dids[i])  # as run_task does, before Celery's retry
            return out.status, out.reason

        try:
            status, reason = handle(0)
            assert status == "pending" and "refused the login for 'digest' (535)" in reason
            assert reason.endswith(
                "email is not tried again for 5 minutes, its digests wait until then"
            )
            assert [handle(i) for i in (1, 2)] == [("pending", reason)] * 2  # untried
            assert smtp.auth_attempts == ["digest"]
            now[0] += DOWN_FOR - 1
            assert handle(1) == ("pending", reason) and smtp.auth_attempts == ["digest"]
            now[0] += 1  # the mark expires: one digest tries the server again, still refused
            assert handle(1)[0] == "pending" and smtp.auth_attempts == ["digest"] * 2
            assert handle(3)[0] == "pending" and smtp.auth_attempts == ["digest"] * 2
            smtp.users["digest"] = "old-password"  # the server takes the password again
            assert handle(2)[0] == "pending"  # still within the second mark: untried
            now[0] += DOWN_FOR
            assert [handle(i)[0] for i in range(4)] == ["sent"] * 4  # no restart needed
        finally:
            d.close()
    assert smtp.auth_attempts == ["digest"] * 3 and smtp.logins == ["digest"]
    assert sorted(m.digest for m in smtp.mails) == sorted(dids)
    assert {r.status for r in map(store.get_digest, dids) if r is not None} == {"sent"}


_CONSUMER = """
import sys, time
from kombu import Connection
with Connection(sys.argv[1]) as conn:
    q = conn.SimpleQueue(sys.argv[2])
    q.get(timeout=10)
    print("got it", flush=True)
    time.sleep(60)
"""


def test_a_task_received_by_a_killed_worker_is_put_back(
    queue: str, pg_url: str, smtp_server: SmtpPeer
) -> None:
    # A consumer takes the task and is SIGKILLed before it acknowledges it, as a worker can be.
    settings = _settings(pg_url, queue, smtp_server)
    app = make_app(settings)
    enqueue(app, settings, [QueuedDigest("some.digest", subscribers(1)[0])])
    proc = subprocess.Popen(
        [sys.executable, "-c", _CONSUMER, REDIS_URL, queue], stdout=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"got it\n"
    proc.kill()
    proc.communicate()
    assert queue_length(app, queue) == 0
    time.sleep(1.2)
    restore_unacked(app, 60.0)
    assert queue_length(app, queue) == 0  # not yet: for all we know it is still running somewhere
    restore_unacked(app, 1.0)
    assert queue_length(app, queue) == 1


def test_a_tick_claims_and_enqueues_each_due_digest_once(
    store: Store, smtp_server: SmtpPeer, pg_url: str, queue: str
) -> None:
    settings = _settings(pg_url, queue, smtp_server)
    app = make_app(settings)
    now = datetime.now(UTC)
    store.upsert_entries(entries(3, now), now)
    first = dispatch_tick(settings, store, subscribers(3), now, app)
    assert (first.enqueued, first.requeued, first.skipped) == (3, 0, 0)
    again = dispatch_tick(settings, store, subscribers(3), now, app)  # the next tick, same minute
    assert (again.enqueued, again.requeued, again.skipped, again.idle) == (0, 0, 0, 3)
    assert queue_length(app, queue) == 3
    assert {r.owner for r in store.digests_with_status("pending")} == {QUEUED}


def test_run_workers_celery_refuses_sqlite_and_says_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subscriptions").mkdir()
    (tmp_path / "digestbot.toml").write_text('subscriptions_dir = "subscriptions"\n')
    result = CliRunner().invoke(
        cli,
        ["run", "--once", "--workers", "celery"],
        env={"DIGESTBOT_BROKER_URL": REDIS_URL, "DIGESTBOT_DATABASE_URL": "sqlite:///x.db"},
    )
    assert result.exit_code == 1
    assert (
        "the worker pool needs PostgreSQL" in result.output
        and "DIGESTBOT_DATABASE_URL=postgresql" in result.output
    )


def _pool_project(
    folder: Path, store: Store, pg_url: str, queue: str, n: int, config: str = ""
) -> dict[str, str]:
    """`n` email subscribers due every minute, three entries in the store; the pool's environment."""
    (folder / "subscriptions").mkdir()
    for sub in subscribers(n):
        (folder / "subscriptions" / f"{sub.id}.toml").write_text(
            f'email = "{sub.email}"\nschedule = "* * * * *"\n[interests]\nkeywords = ["quantization"]\n'
        )
    (folder / "digestbot.toml").write_text(f'subscriptions_dir = "subscriptions"\n{config}')
    now = datetime.now(UTC)
    store.upsert_entries(entries(3, now), now)
    return {
        "DIGESTBOT_BROKER_URL": REDIS_URL,
        "DIGESTBOT_DATABASE_URL": pg_url,
        "DIGESTBOT_QUEUE": queue,
    }


def test_run_once_workers_celery_claims_and_queues_the_due_digests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Store, pg_url: str, queue: str
) -> None:
    monkeypatch.chdir(tmp_path)
    env = _pool_project(tmp_path, store, pg_url, queue, 2)
    result = CliRunner().invoke(cli, ["run", "--once", "--workers", "celery"], env=env)
    assert result.exit_code == 0, result.output
    assert "dispatched to the pool: 2 digests queued, 0 stalled ones queued again" in result.output
    assert {r.owner for r in store.digests_with_status("pending")} == {QUEUED}
    assert queue_length(make_app(load_settings(None, env)), queue) == 2
    assert "outbox" not in result.output  # email without SMTP and no outbox: they wait


def test_run_once_workers_celery_says_what_it_queued_for_the_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Store, pg_url: str, queue: str
) -> None:
    """As `run --once` says how many digests went to the outbox instead of anyone, the pool's
    dispatcher says how many it queued for it (the workers write them)."""
    monkeypatch.chdir(tmp_path)
    env = _pool_project(tmp_path, store, pg_url, queue, 3, config='outbox_dir = "outbox"\n')
    result = CliRunner().invoke(cli, ["-q", "run", "--once", "--workers", "celery"], env=env)
    assert result.exit_code == 0, result.output
    assert re.search(
        r"^3 digests are queued for the outbox \(.*outbox\), not to anyone: outbox_dir in "
        r".*digestbot.toml chooses it while email or Slack is not configured",
        result.output,
        re.MULTILINE,
    ), result.output
    assert queue_length(make_app(load_settings(None, env)), queue) == 3


class _Clocked(Channel):
    """A stand-in channel that notes when each send happened."""

    def __init__(self, settings: Settings, stamps: list[tuple[str, float]]) -> None:
        super().__init__(settings)
        self.stamps = stamps

    def send(self, digest: Digest) -> Receipt:
        self.stamps.append((digest.subscriber.slack_channel, time.monotonic()))
        return Receipt("slack", digest.subscriber.slack_channel)


@pytest.mark.slow
def test_slack_posts_to_one_channel_are_one_a_second_across_workers(queue: str) -> None:
    settings = Settings(ratelimit_url=REDIS_URL, queue=queue, slack_token="xoxb-test")
    stamps: list[tuple[str, float]] = []
    # Two workers' wrappers, each with its own limiters, as two processes would have.
    workers = [
        RateLimited(
            _Clocked(settings, stamps), REDIS_URL, f"{queue}:rate:slack", 1.0, per_destination=True
        )
        for _ in range(2)
    ]

    def digest(channel: str) -> Digest:
        sub = Subscriber(id=channel.strip("#"), slack_channel=channel)
        return Digest(f"{sub.id}.x", sub, datetime.now(UTC), ())

    try:
        for n in range(4):
            workers[n % 2].send(digest("#papers"))
            workers[n % 2].send(digest("#other"))
    finally:
        for w in workers:
            w.close()
    papers = [t for c, t in stamps if c == "#papers"]
    other = [t for c, t in stamps if c == "#other"]
    assert all(
        b - a >= 0.95 for a, b in itertools.pairwise(papers)
    )  # one a second, whichever worker
    assert other[0] - papers[0] < 0.5  # another channel does not wait for this one's bucket


def test_a_stopping_worker_closes_its_deliverer(
    smtp_server: SmtpPeer, pg_url: str, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`digestbot worker` closes what its tasks opened when it stops (Celery's worker_main
    ends with SystemExit): the lease thread, the channels' connections, the store (they lived
    until the process was killed)."""
    from bot.pool import app as pool_app
    from bot.pool.worker import close_deliverer

    settings = _settings(pg_url, queue, smtp_server)
    app = make_app(settings)
    threads = []

    def worker_main(argv: list[str]) -> None:  # a task ran, then the worker was stopped
        deliverer = PoolDeliverer(settings, Store(pg_url))
        app.digestbot_deliverer = deliverer
        with deliverer.sender.heartbeat.keep("any"):  # the lease thread runs while one is kept
            threads.append(deliverer.sender.heartbeat._thread)
        raise SystemExit(0)

    monkeypatch.setattr(app, "worker_main", worker_main)
    monkeypatch.setattr(pool_app, "make_app", lambda _settings: app)
    with pytest.raises(SystemExit):
        pool_app.start_worker(settings)
    (thread,) = threads
    assert thread is not None and not thread.is_alive() and app.digestbot_deliverer is None
    close_deliverer(app)  # nothing left to close: nothing happens
