"""The dispatcher side: match all due subscribers in one pass, claim each digest, enqueue its id.

Each digest is claimed in the ledger (unique (subscriber, slot) and (subscriber, entry)) with the
owner `QUEUED` and a short lease (`ENQUEUE_LEASE`), and only its id and subscriber are enqueued
(`QueuedDigest`); once its task is in the broker its lease becomes `QUEUE_LEASE`. A digest whose
task may be lost (its worker died, its lease ran out, the broker failed or the dispatcher died
before it was enqueued) is enqueued again by a later tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..channels import channel_for
from ..config import Settings, mask_url
from ..delivery import LEASE, FittedModel, Plan, outbox_line, owner_alive, plan_digests
from ..errors import BotError
from ..models import Claim, Claimed, DigestStatus, Subscriber
from ..store import DigestRow, Store, open_store
from .app import make_app, require_pool
from .task import ENQUEUE_LEASE, QUEUE_LEASE, QUEUE_OWNERS, QUEUED, REQUEUED, TASK, QueuedDigest

log = logging.getLogger("bot.pool")


@dataclass(slots=True)
class DispatchReport:
    """What one dispatcher tick did."""

    enqueued: int = 0
    empty: int = 0
    skipped: int = 0
    requeued: int = 0
    idle: int = 0
    outbox: int = 0  # of those enqueued, digests the workers will write to the outbox, not send


@contextmanager
def broker_errors(settings: Settings) -> Iterator[None]:
    """The broker's failures (Celery's OperationalError, a refused connection) as a BotError
    that says the fix."""
    from celery.exceptions import OperationalError

    try:
        yield
    except (OperationalError, OSError) as e:
        raise BotError(
            f"the broker {mask_url(settings.broker_url)} failed ({e}); check DIGESTBOT_BROKER_URL "
            "and that the broker is running (digests claimed but not queued are queued again "
            f"{ENQUEUE_LEASE.total_seconds() / 60:g} minutes later)"
        ) from e


def enqueue(app: Any, settings: Settings, items: Sequence[QueuedDigest]) -> None:
    """Send a task for each claimed digest, on one broker connection."""
    if not items:
        return
    with broker_errors(settings), app.producer_or_acquire() as producer:
        for item in items:
            app.send_task(TASK, args=item.args(), queue=settings.queue, producer=producer)


def enqueue_held(
    app: Any,
    settings: Settings,
    store: Store,
    items: Sequence[QueuedDigest],
    owner: str,
    now: datetime | None = None,
) -> None:
    """Enqueue digests held by `owner` (a queue marker) under `ENQUEUE_LEASE`, then give them
    `QUEUE_LEASE` from `now`: the time a task may wait in the broker before it is taken to be
    lost. (A worker that took one meanwhile keeps its own lease.)"""
    enqueue(app, settings, items)
    if items:
        store.hold_for([i.digest_id for i in items], owner, QUEUE_LEASE, now=now)


def dispatch_due(
    settings: Settings,
    store: Store,
    subscribers: Sequence[Subscriber],
    now: datetime,
    app: Any = None,
    report: DispatchReport | None = None,
    threads: int = 2,
    model: FittedModel | None = None,
) -> int:
    """Match every due subscriber in one pass, claim each digest, enqueue its id; return how many.

    Digests are claimed 100 to a transaction on `threads` database connections at once (the
    ledger's unique keys make this safe in any order and against other dispatchers); each batch
    is enqueued as soon as it is claimed, so the workers start while the rest is claimed.
    `model`: the dispatcher's fitted matcher, reused while the corpus is unchanged.
    """
    app = app if app is not None else make_app(settings)
    report = report if report is not None else DispatchReport()
    due = plan_digests(settings, store, subscribers, now, model=model)
    report.idle += len(due.idle)

    def claim(chunk: Sequence[Plan]) -> list[Claimed | None]:
        return store.claim_many(
            [
                Claim(p.subscriber.id, p.slot, p.items, channel_for(p.subscriber, settings), p.more)
                for p in chunk
            ],
            owner=QUEUED,
            lease=ENQUEUE_LEASE,
            now=datetime.now(UTC),
        )

    chunks = [due.plans[i : i + 100] for i in range(0, len(due.plans), 100)]
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="claim") as pool:
        for chunk, results in zip(chunks, pool.map(claim, chunks)):
            batch: list[QueuedDigest] = []
            for plan, claimed in zip(chunk, results):
                if claimed is None:
                    report.skipped += 1  # another dispatcher claimed this slot
                elif not claimed.items:
                    report.empty += 1
                else:
                    batch.append(QueuedDigest(claimed.digest_id, plan.subscriber))
                    report.outbox += channel_for(plan.subscriber, settings) == "outbox"
            enqueue_held(app, settings, store, batch, QUEUED)
            report.enqueued += len(batch)
    return report.enqueued


def stalled(row: DigestRow, now: datetime) -> bool:
    """Whether a pending digest's task may be lost: its lease ran out, or its owner died."""
    if row.lease_until is not None and row.lease_until < now:
        return True
    return row.owner not in (*QUEUE_OWNERS, "") and not owner_alive(row.owner)


def requeue_stalled(
    settings: Settings,
    store: Store,
    subscribers: Sequence[Subscriber],
    app: Any = None,
    now: datetime | None = None,
) -> int:
    """Enqueue again each pending digest whose task may be lost: its owner died or its lease ran out."""
    app = app if app is not None else make_app(settings)
    now = now or datetime.now(UTC)
    by_id = {s.id: s for s in subscribers}
    batches: dict[str, list[QueuedDigest]] = {QUEUED: [], REQUEUED: []}
    for row in store.digests_with_status(DigestStatus.PENDING):
        if not stalled(row, now):
            continue
        sub = by_id.get(row.subscriber_id)
        if sub is None:
            continue  # the subscriber's file is broken or gone: keep it pending until it is back
        # Never taken by a worker: still untried (QUEUED); else it may have been sent (REQUEUED).
        # Taken on the lease it was seen stalled with: a sender that renewed it keeps it.
        owner = QUEUED if row.owner == QUEUED else REQUEUED
        if store.take_over(row.id, row.owner, owner, ENQUEUE_LEASE, now=now, seen=row.lease_until):
            batches[owner].append(QueuedDigest(row.id, sub))
    for owner, batch in batches.items():
        enqueue_held(app, settings, store, batch, owner, now)
    return sum(len(b) for b in batches.values())


def restore_unacked(app: Any, older_than: float) -> None:
    """Redis broker: put back tasks a worker received but has not acknowledged for `older_than` s.

    RabbitMQ does this itself the moment a worker's connection drops; Redis keeps a killed
    worker's received task aside until this runs (the workers also run it, every few seconds,
    for tasks older than the visibility timeout). A task put back while its worker still runs
    it is only a duplicate, which the ledger makes harmless.
    """
    if not str(app.conf.broker_url).startswith(("redis://", "rediss://")):
        return
    with app.connection_for_write(transport_options={"visibility_timeout": older_than}) as conn:
        conn.default_channel.qos.restore_visible(num=100000, interval=1)


def dispatch_tick(
    settings: Settings,
    store: Store,
    subscribers: Sequence[Subscriber],
    now: datetime | None = None,
    app: Any = None,
    model: FittedModel | None = None,
) -> DispatchReport:
    """One scheduler tick for the pool: re-enqueue stalled digests, then dispatch what is due
    (`model`: the fitted matcher kept between ticks, as the single process's scheduler keeps)."""
    app = app if app is not None else make_app(settings)
    now = now or datetime.now(UTC)
    with broker_errors(settings):
        restore_unacked(app, LEASE.total_seconds())
    report = DispatchReport(requeued=requeue_stalled(settings, store, subscribers, app, now))
    dispatch_due(settings, store, subscribers, now, app, report, model=model)
    return report


def run_dispatcher(
    settings: Settings,
    load_subscribers: Callable[[Store], Sequence[Subscriber]],
    fetch: Callable[[Store], object] | None = None,
) -> None:
    """The scheduler process of a pool: fetch on its interval, dispatch due digests every minute.

    `load_subscribers(store)` is called on every tick (files and web subscribers may change);
    `fetch(store)` fetches every source. Stops on SIGINT/SIGTERM.
    """
    from apscheduler.schedulers.blocking import BlockingScheduler

    require_pool(settings)
    app = make_app(settings)
    store = open_store(settings)
    model = FittedModel.for_settings(settings)  # fitted again only when the corpus changes

    def tick() -> None:
        try:
            r = dispatch_tick(settings, store, load_subscribers(store), app=app, model=model)
            log.info(
                "dispatched %d digests (%d re-enqueued, %d empty)", r.enqueued, r.requeued, r.empty
            )
            if r.outbox:
                log.warning("%s", outbox_line(settings, r.outbox, "are queued for"))
        except BotError as e:
            log.error("dispatch failed: %s", e)

    sched = BlockingScheduler(timezone=UTC)
    if fetch is not None:
        sched.add_job(
            lambda: fetch(store),
            "interval",
            minutes=settings.fetch_interval_minutes,
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
        )
    sched.add_job(
        tick,
        "cron",
        second=0,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC) + timedelta(seconds=5 if fetch is not None else 0),
    )
    log.info("dispatching to %s, queue %s", mask_url(settings.broker_url), settings.queue)
    try:
        sched.start()
    finally:
        store.close()
