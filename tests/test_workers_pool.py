"""The pool with real processes: this process dispatches, two `digestbot worker` processes send.

PostgreSQL (a schema of our own), Redis (a queue of our own) and a loopback SMTP server.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _pool import Pool, entries, pool_env, redis_queue, subscribers
from peers import SmtpPeer, wait_for

from bot.config import load_settings
from bot.pool import (
    QueuedDigest,
    dispatch_due,
    enqueue,
    make_app,
    pool_status,
    requeue_stalled,
    restore_unacked,
)
from bot.store import Store

pytestmark = pytest.mark.slow

N = 500  # both workers busy throughout, and room for the kill to land mid-run


@pytest.fixture
def queue() -> Iterator[str]:
    yield from redis_queue()


def _pool(tmp_path: Path, pg_url: str, queue: str, smtp_server: SmtpPeer, rate: float) -> Pool:
    return Pool(tmp_path, pool_env(tmp_path, pg_url, queue, smtp_server, rate))


@pytest.fixture
def pool(tmp_path: Path, pg_url: str, queue: str, smtp_server: SmtpPeer) -> Iterator[Pool]:
    p = _pool(tmp_path, pg_url, queue, smtp_server, rate=100000)
    yield p
    p.stop()


def _sent(store: Store) -> int:
    return len(store.digests_with_status("sent"))


def _dispatch(pool: Pool, store: Store, n: int, prefix: str = "s") -> tuple[int, object]:
    settings = load_settings(environ=pool.env)
    app = make_app(settings)
    now = datetime.now(UTC)
    store.upsert_entries(entries(6, now), now)
    return dispatch_due(settings, store, subscribers(n, prefix), now, app), app


def test_two_workers_serve_every_subscriber_exactly_once(
    pool: Pool, pg_url: str, smtp_server: SmtpPeer
) -> None:
    store = Store(pg_url)
    try:
        pool.start_worker()
        pool.start_worker()
        enqueued, _ = _dispatch(pool, store, N)
        assert enqueued == N
        wait_for(
            lambda: _sent(store) == N,
            240,
            f"{N} digests sent",
            lambda: f"{_sent(store)} sent, {smtp_server.count()} received\n{pool.logs()}",
        )
        assert store.digests_with_status("pending", "failed") == []
        # status counts this queue's two workers, not others on the same (shared) broker
        settings = load_settings(environ=pool.env)
        assert pool_status(settings, store, ping_timeout=2.0).workers == 2
    finally:
        store.close()
    got = list(smtp_server.mails)
    per_rcpt = Counter(m.to[0] for m in got)
    assert len(per_rcpt) == N and set(per_rcpt.values()) == {1}, "every subscriber exactly once"
    assert len({m.message_id for m in got}) == N


def test_a_worker_killed_mid_run_loses_nothing(
    pool: Pool, pg_url: str, smtp_server: SmtpPeer
) -> None:
    store = Store(pg_url)
    try:
        victim = pool.start_worker()
        pool.start_worker()
        _, app = _dispatch(pool, store, N)
        wait_for(lambda: smtp_server.count() >= N // 4, 60, "a quarter of the digests", pool.logs)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        pool.start_worker()
        # The scheduler's next tick: a digest its dead worker held goes back to the queue, and so
        # does (Redis) a task it had received but not yet taken: we compress the 5-minute wait
        # for that to 1 s (a task put back while a live worker runs it is a harmless duplicate).
        time.sleep(1.5)
        restore_unacked(app, 1.0)
        settings = load_settings(environ=pool.env)
        requeued = requeue_stalled(settings, store, subscribers(N), app)
        assert requeued <= 1  # a solo worker holds at most the one digest in hand
        wait_for(
            lambda: _sent(store) == N,
            240,
            f"{N} digests sent after the kill",
            lambda: f"{_sent(store)} sent, {smtp_server.count()} received\n{pool.logs()}",
        )
        assert store.digests_with_status("pending", "failed") == []
    finally:
        store.close()
    got = list(smtp_server.mails)
    ids_per_rcpt: dict[str, set[str]] = {}
    for m in got:
        ids_per_rcpt.setdefault(m.to[0], set()).add(m.message_id)
    assert len(ids_per_rcpt) == N, "every subscriber served"
    assert all(len(ids) == 1 for ids in ids_per_rcpt.values()), (
        "one digest per subscriber: a twin has the same Message-ID"
    )
    assert len(got) - N <= 1, f"at most the one in-flight twin, got {len(got) - N} extra"


def test_the_same_task_enqueued_twice_sends_once(
    pool: Pool, pg_url: str, smtp_server: SmtpPeer
) -> None:
    store = Store(pg_url)
    try:
        pool.start_worker()
        pool.start_worker()
        _, app = _dispatch(pool, store, 3, prefix="twice")
        settings = load_settings(environ=pool.env)
        subs = {s.id: s for s in subscribers(3, prefix="twice")}
        # the same tasks twice more while the first copies are in flight or done
        rows = store.digests_with_status("pending", "sent")
        assert len(rows) == 3
        enqueue(app, settings, [QueuedDigest(r.id, subs[r.subscriber_id]) for r in rows] * 2)
        # a marker digest behind them: once it is sent, the copies have all been taken
        assert (
            dispatch_due(settings, store, subscribers(1, prefix="after"), datetime.now(UTC), app)
            == 1
        )
        wait_for(lambda: _sent(store) == 4, 30, "4 digests sent", pool.logs)
        pool.stop()  # a warm shutdown: each worker finishes the task in hand
    finally:
        store.close()
    assert Counter(m.to[0] for m in smtp_server.mails) == Counter(
        {
            "twice00000@example.org": 1,
            "twice00001@example.org": 1,
            "twice00002@example.org": 1,
            "after00000@example.org": 1,
        }
    )


def test_the_smtp_rate_limit_holds_for_the_pool(
    tmp_path: Path, pg_url: str, queue: str, smtp_server: SmtpPeer
) -> None:
    # 20 messages/s for the pool: 40 digests take ≥ 1.9 s with two workers; with a limit per
    # worker they would take about 1 s.
    p = _pool(tmp_path, pg_url, queue, smtp_server, rate=20)
    store = Store(pg_url)
    try:
        p.start_worker()
        p.start_worker()
        _dispatch(p, store, 40, prefix="rate")
        wait_for(lambda: _sent(store) == 40, 60, "40 digests sent", p.logs)
    finally:
        store.close()
        p.stop()
    stamps = sorted(m.at for m in smtp_server.mails)
    assert len(stamps) == 40
    assert stamps[-1] - stamps[0] >= 39 / 20 - 0.1
    for i in range(len(stamps) - 20):
        assert stamps[i + 20] - stamps[i] >= 1.0 - 0.1


_DISPATCHER = """
import sys
sys.path.insert(0, sys.argv[1])
from _pool import subscribers
from bot.config import load_settings
from bot.pool import run_dispatcher
run_dispatcher(load_settings(), lambda store: subscribers(3, prefix="disp"))
"""


def test_the_dispatcher_process_claims_and_enqueues_on_its_first_tick(
    tmp_path: Path, pg_url: str, queue: str, smtp_server: SmtpPeer
) -> None:
    import subprocess
    import sys

    p = _pool(tmp_path, pg_url, queue, smtp_server, rate=100000)
    store = Store(pg_url)
    now = datetime.now(UTC)
    store.upsert_entries(entries(3, now), now)
    proc = subprocess.Popen(
        [sys.executable, "-c", _DISPATCHER, str(Path(__file__).parent)],
        cwd=tmp_path,
        env=p.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(store.digests_with_status("pending")) == 3, 60, "3 claimed digests")
        app = make_app(load_settings(environ=p.env))
        from bot.pool import queue_length

        wait_for(lambda: queue_length(app, queue) == 3, 10, "3 tasks in the queue")
    finally:
        proc.terminate()
        proc.wait()
        store.close()
