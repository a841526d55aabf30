"""Past one machine: one dispatcher claims due digests in the ledger, a Celery pool sends them.

The dispatcher (the scheduler process) matches all due subscribers in one pass, *claims* each
digest in the ledger (unique (subscriber, slot) and (subscriber, entry)) with the owner
`QUEUED`, and enqueues only its id and subscriber. A worker takes the digest over from `QUEUED`
with a compare-and-swap before it sends, so a task delivered twice finds the digest taken or
sent and does nothing; a task whose worker was killed is redelivered (late acknowledgement) or
re-enqueued by the dispatcher, and the digest is taken over from its dead owner and re-sent
with the same Message-ID: the one documented in-flight twin.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .channels import CHANNELS, Channel, channel_for
from .channels.slack import CHANNEL_INTERVAL
from .config import Settings, mask_url
from .errors import BotError, StoreError, TransientSendError
from .models import Digest, DigestItem, Interests, Receipt, Subscriber
from .pipeline import LEASE, Deliverer, Outcome, Plan, RetryPolicy, _owner_alive, plan_digests
from .ratelimit_shared import SharedRateLimiter
from .store import DigestRow, Store

log = logging.getLogger(__name__)

TASK = "digestbot.deliver"
QUEUED = "(queued)"  # the owner of a claimed digest waiting in the broker; no host:pid, never "dead"
QUEUE_LEASE = timedelta(hours=2)  # a queued digest not taken within this is enqueued again (its task was lost)
MAX_RETRIES = 8  # Celery retries of a transient failure; then the dispatcher's re-enqueue takes over


# --- settings and the Celery app ------------------------------------------------------------------
def require_pool(settings: Settings) -> None:
    """Refuse to run a worker pool on settings that cannot carry one, saying the fix."""
    if not settings.broker_url:
        raise BotError("no broker for the worker pool; set DIGESTBOT_BROKER_URL, e.g. "
                       "redis://127.0.0.1:6379/0 or amqp://guest@127.0.0.1:5672//")
    if settings.database_url.startswith("sqlite"):
        raise BotError(
            f"the worker pool needs PostgreSQL, but the store is SQLite ({settings.database_url}): "
            "workers on several machines cannot share one SQLite file; set DIGESTBOT_DATABASE_URL="
            "postgresql+psycopg://user@host:5432/digestbot (or run without --workers celery)")


def ratelimit_url(settings: Settings) -> str:
    """The Redis holding the pool's rate limits: DIGESTBOT_RATELIMIT_URL, else a redis:// broker."""
    if settings.ratelimit_url:
        return settings.ratelimit_url
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return ""


def make_app(settings: Settings) -> Any:
    """The Celery app of this deployment, with the delivery task registered."""
    from celery import Celery

    require_pool(settings)
    app = Celery("digestbot", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,  # acknowledge after the task ran: a killed worker's task comes back
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # hold no more than the digest in hand
        task_default_queue=settings.queue,
        task_serializer="json", accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        # Redis only: a received task not acknowledged within this goes back to the queue (the
        # task of a killed worker). Longer than any task runs; a retry's countdown stays below it.
        broker_transport_options={"visibility_timeout": LEASE.total_seconds()},
    )
    app.digestbot_settings = settings

    @app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True,  # type: ignore[untyped-decorator]
              max_retries=MAX_RETRIES)
    def deliver(task: Any, did: str, subscriber: dict[str, Any]) -> str:
        """Send one claimed digest: take it over, send it, confirm it."""
        return _run_task(task, did, subscriber)

    return app


def _run_task(task: Any, did: str, data: dict[str, Any]) -> str:
    app = task.app
    deliverer: PoolDeliverer | None = getattr(app, "digestbot_deliverer", None)
    if deliverer is None:
        settings: Settings = app.digestbot_settings
        deliverer = PoolDeliverer(settings, Store(settings.database_url))
        app.digestbot_deliverer = deliverer
    try:
        outcome = deliverer.handle(did, subscriber_from_dict(data))
    except StoreError as e:  # the database is away: keep the task, try again shortly
        log.warning("digest %s: %s", did, e)
        raise task.retry(countdown=random.uniform(5, 30), exc=e) from e
    log.info("digest %s for %s: %s%s", did, outcome.subscriber, outcome.status, f" ({outcome.reason})" if outcome.reason else "")
    if outcome.status == "pending":  # a transient failure: give the digest back and retry later
        deliverer.release(did)
        countdown = random.uniform(0, min(240, 5 * 2 ** task.request.retries))
        if task.request.retries < MAX_RETRIES:
            raise task.retry(countdown=countdown)
    return outcome.status


# --- the task's payload -----------------------------------------------------------------------
def subscriber_to_dict(sub: Subscriber) -> dict[str, Any]:
    """A subscriber as JSON-safe data for a task message."""
    return asdict(sub)


def subscriber_from_dict(data: Mapping[str, Any]) -> Subscriber:
    """A subscriber back from a task message."""
    i = data.get("interests") or {}
    interests = Interests(i.get("description", ""), *(tuple(i.get(k) or ()) for k in ("keywords", "exclude", "topics", "authors")))
    known = Subscriber.__dataclass_fields__  # a newer scheduler may send fields this worker lacks
    return Subscriber(**{k: v for k, v in data.items() if k in known and k != "interests"}, interests=interests)


# --- the worker side --------------------------------------------------------------------------
class RateLimited(Channel):
    """A channel whose sends wait for the pool's shared rate limit (one bucket, or one per destination)."""

    def __init__(self, inner: Channel, url: str, key: str, rate: float, per_destination: bool = False) -> None:
        super().__init__(inner.settings)
        self.inner = inner
        self.url, self.key, self.rate, self.per_destination = url, key, rate, per_destination
        self.limiters: dict[str, SharedRateLimiter] = {}

    def limiter(self, digest: Digest) -> SharedRateLimiter:
        """The bucket this digest's send draws from: the channel's, or its destination's (a Slack channel)."""
        key = f"{self.key}:{digest.subscriber.address}" if self.per_destination else self.key
        if key not in self.limiters:
            self.limiters[key] = SharedRateLimiter(self.url, key, self.rate)
        return self.limiters[key]

    def send(self, digest: Digest) -> Receipt:
        """Wait for a token shared with every worker, then send."""
        try:
            self.limiter(digest).acquire()
        except BotError as e:
            raise TransientSendError(str(e)) from e
        return self.inner.send(digest)

    def already_delivered(self, digest: Digest) -> bool:
        """As the wrapped channel says."""
        return self.inner.already_delivered(digest)

    def close(self) -> None:
        """Close the wrapped channel and the limiters' connections."""
        self.inner.close()
        for limiter in self.limiters.values():
            limiter.close()
        self.limiters.clear()


def channel_rates(settings: Settings) -> dict[str, tuple[float, bool]]:
    """Messages per second per channel for the whole pool together, and whether per destination."""
    return {"email": (settings.smtp_rate, False), "slack": (1.0 / CHANNEL_INTERVAL, True)}


class PoolDeliverer(Deliverer):
    """A `Deliverer` for one worker: sends digests the dispatcher claimed, under shared limits."""

    def __init__(self, settings: Settings, store: Store, **kwargs: Any) -> None:
        kwargs.setdefault("retry", RetryPolicy(attempts=1))  # Celery retries; the worker stays free
        super().__init__(settings, store, **kwargs)
        self._limited: dict[str, Channel] = {}

    def channel(self, name: str) -> Channel:
        """The channel for `name`, wrapped in the pool-wide rate limit when it has one."""
        if name not in self._limited:
            inner = super().channel(name)
            rate, per_destination = channel_rates(self.settings).get(name, (0.0, False))
            url = ratelimit_url(self.settings)
            if rate > 0 and url:
                self._limited[name] = RateLimited(inner, url, f"{self.settings.queue}:rate:{name}", rate, per_destination)
            else:
                if rate > 0:
                    log.warning("no Redis for the shared %s rate limit; set DIGESTBOT_RATELIMIT_URL", name)
                self._limited[name] = inner
        return self._limited[name]

    def close(self) -> None:
        """Close every channel and limiter."""
        for ch in self._limited.values():
            if isinstance(ch, RateLimited):
                for limiter in ch.limiters.values():
                    limiter.close()
        self._limited.clear()
        super().close()

    def may_take(self, row: DigestRow) -> bool:
        """Whether this worker may send `row` now: queued, ours, or its owner's lease is void."""
        return row.owner == QUEUED or self._may_take(row)

    def handle(self, did: str, sub: Subscriber) -> Outcome:
        """Take a claimed digest over (compare-and-swap), send it and confirm it; skip it if done."""
        row = self.store.get_digest(did)
        if row is None:
            return Outcome(sub.id, "skipped", digest_id=did, reason="no such digest in the ledger")
        if row.status != "pending":
            return Outcome(sub.id, "skipped", digest_id=did, reason=f"already {row.status}")
        if not self.may_take(row):
            return Outcome(sub.id, "skipped", digest_id=did, reason=f"in flight on {row.owner}")
        if not self.store.take_over(did, row.owner, self.owner, LEASE):
            return Outcome(sub.id, "skipped", digest_id=did, reason="another worker took it")
        digest = Digest(did, sub, row.slot, tuple(self.store.digest_items(did)), row.more)
        name = row.channel if row.channel in CHANNELS else channel_for(sub, self.settings)
        if row.owner not in (QUEUED, self.owner):  # taken from a dead sender: was it delivered?
            try:
                if self.channel(name).already_delivered(digest):
                    self.store.mark_sent(did, "found delivered after its worker died")
                    return Outcome(sub.id, "sent", len(digest.items), sub.address, did, "recovered")
            except BotError as e:
                log.warning("could not check whether %s was delivered: %s", did, e)
        return self.send(digest, name)

    def release(self, did: str) -> bool:
        """Give a pending digest back to the queue, so any worker may take it on the retry."""
        # The pipeline may have let it go already (owner ""), after its last try.
        return (self.store.take_over(did, self.owner, QUEUED, QUEUE_LEASE)
                or self.store.take_over(did, "", QUEUED, QUEUE_LEASE))


# --- the dispatcher side ----------------------------------------------------------------------
@dataclass(slots=True)
class DispatchReport:
    """What one dispatcher tick did."""

    enqueued: int = 0
    empty: int = 0
    skipped: int = 0
    requeued: int = 0
    idle: int = 0


def _enqueue(app: Any, settings: Settings, items: Sequence[tuple[str, Subscriber]]) -> None:
    if not items:
        return
    with app.producer_or_acquire() as producer:
        for did, sub in items:
            app.send_task(TASK, args=[did, subscriber_to_dict(sub)], queue=settings.queue, producer=producer)


def dispatch_due(settings: Settings, store: Store, subscribers: Sequence[Subscriber], now: datetime,
                 app: Any = None, report: DispatchReport | None = None, threads: int = 2) -> int:
    """Match every due subscriber in one pass, claim each digest, enqueue its id; return how many.

    Digests are claimed 100 to a transaction on `threads` database connections at once (the
    ledger's unique keys make this safe in any order and against other dispatchers); each batch
    is enqueued as soon as it is claimed, so the workers start while the rest is claimed.
    """
    app = app if app is not None else make_app(settings)
    report = report if report is not None else DispatchReport()
    plans, idle = plan_digests(settings, store, subscribers, now)
    report.idle += len(idle)

    def claim(chunk: Sequence[Plan]) -> list[tuple[str, list[DigestItem]] | None]:
        return store.claim_many([(p.subscriber.id, p.slot, p.items, channel_for(p.subscriber, settings), p.more)
                                 for p in chunk], owner=QUEUED, lease=QUEUE_LEASE, now=datetime.now(UTC))

    chunks = [plans[i:i + 100] for i in range(0, len(plans), 100)]
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="claim") as pool:
        for chunk, results in zip(chunks, pool.map(claim, chunks)):
            batch: list[tuple[str, Subscriber]] = []
            for plan, claimed in zip(chunk, results):
                if claimed is None:
                    report.skipped += 1  # another dispatcher claimed this slot
                elif not claimed[1]:
                    report.empty += 1
                else:
                    batch.append((claimed[0], plan.subscriber))
            _enqueue(app, settings, batch)
            report.enqueued += len(batch)
    return report.enqueued


def requeue_stalled(settings: Settings, store: Store, subscribers: Sequence[Subscriber],
                    app: Any = None, now: datetime | None = None) -> int:
    """Enqueue again each pending digest whose task may be lost: its owner died or its lease ran out."""
    app = app if app is not None else make_app(settings)
    now = now or datetime.now(UTC)
    by_id = {s.id: s for s in subscribers}
    batch = []
    for row in store.digests_with_status("pending"):
        if not _stalled(row, now):
            continue
        sub = by_id.get(row.subscriber_id)
        if sub is None:
            continue  # the subscriber's file is broken or gone: keep it pending until it is back
        if store.take_over(row.id, row.owner, QUEUED, QUEUE_LEASE, now=now):
            batch.append((row.id, sub))
    _enqueue(app, settings, batch)
    return len(batch)


def _stalled(row: DigestRow, now: datetime) -> bool:
    if row.lease_until is not None and row.lease_until < now:
        return True
    return row.owner not in (QUEUED, "") and not _owner_alive(row.owner)


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


def dispatch_tick(settings: Settings, store: Store, subscribers: Sequence[Subscriber],
                  now: datetime | None = None, app: Any = None) -> DispatchReport:
    """One scheduler tick for the pool: re-enqueue stalled digests, then dispatch what is due."""
    app = app if app is not None else make_app(settings)
    now = now or datetime.now(UTC)
    restore_unacked(app, LEASE.total_seconds())
    report = DispatchReport(requeued=requeue_stalled(settings, store, subscribers, app, now))
    dispatch_due(settings, store, subscribers, now, app, report)
    return report


def run_dispatcher(settings: Settings, load_subscribers: Callable[[Store], Sequence[Subscriber]],
                   fetch: Callable[[Store], object] | None = None) -> None:
    """The scheduler process of a pool: fetch on its interval, dispatch due digests every minute.

    `load_subscribers(store)` is called on every tick (files and web subscribers may change);
    `fetch(store)` fetches every source. Stops on SIGINT/SIGTERM.
    """
    from apscheduler.schedulers.blocking import BlockingScheduler

    require_pool(settings)
    app = make_app(settings)
    store = Store(settings.database_url)

    def tick() -> None:
        try:
            r = dispatch_tick(settings, store, load_subscribers(store), app=app)
            log.info("dispatched %d digests (%d re-enqueued, %d empty)", r.enqueued, r.requeued, r.empty)
        except BotError as e:
            log.error("dispatch failed: %s", e)

    sched = BlockingScheduler(timezone=UTC)
    if fetch is not None:
        sched.add_job(lambda: fetch(store), "interval", minutes=settings.fetch_interval_minutes,
                      next_run_time=datetime.now(UTC), max_instances=1, coalesce=True)
    sched.add_job(tick, "cron", second=0, max_instances=1, coalesce=True,
                  next_run_time=datetime.now(UTC) + timedelta(seconds=5 if fetch is not None else 0))
    log.info("dispatching to %s, queue %s", mask_url(settings.broker_url), settings.queue)
    try:
        sched.start()
    finally:
        store.close()


def start_worker(settings: Settings, loglevel: str = "INFO") -> None:
    """Run a Celery worker for this deployment in this process until it is stopped."""
    require_pool(settings)
    app = make_app(settings)
    # solo: one digest at a time per process; the owner token host:pid then names exactly the
    # process that holds a digest, so a SIGKILLed worker's digest is taken over at once.
    # Scale by running more `digestbot worker` processes.
    app.worker_main(argv=[
        "worker", "--pool=solo", f"--queues={settings.queue}", f"--loglevel={loglevel}",
        f"--hostname=digestbot.{os.getpid()}@{socket.gethostname()}",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ])


# --- observability ----------------------------------------------------------------------------
@dataclass(slots=True)
class PoolStatus:
    """The pool at a glance: the broker's queue, the workers, and the ledger's open digests."""

    queued: int | None  # tasks waiting in the broker (None: no broker, or unreachable)
    workers: int | None  # workers answering a ping (None: no broker, or unreachable)
    running: int  # pending digests a live worker holds now
    waiting: int  # pending digests claimed and queued, not yet taken by a worker
    stalled: int  # pending digests whose worker died or whose lease ran out: re-enqueued next tick
    failed: int
    recent_failures: list[DigestRow] = field(default_factory=list)

    @property
    def pending(self) -> int:
        """Claimed digests not yet confirmed sent or failed."""
        return self.running + self.waiting + self.stalled


def queue_length(app: Any, queue: str) -> int | None:
    """How many tasks wait in the broker's queue; None when the broker cannot be reached."""
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            try:
                return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)
            except Exception as e:
                if "NOT_FOUND" in str(e) or "no queue" in str(e).lower():
                    return 0
                raise
    except Exception as e:  # noqa: BLE001  (broker errors come from kombu, redis or amqp)
        log.warning("cannot read the queue %s: %s", queue, e)
        return None


def pool_status(settings: Settings, store: Store, app: Any = None, ping_timeout: float = 1.0,
                now: datetime | None = None) -> PoolStatus:
    """Queued, running, pending and failed digests across the pool."""
    if app is None and settings.broker_url:
        app = make_app(settings)
    now = now or datetime.now(UTC)
    running = waiting = stalled = 0
    for row in store.digests_with_status("pending"):
        if _stalled(row, now):
            stalled += 1
        elif row.owner == QUEUED:
            waiting += 1
        else:
            running += 1
    failed = store.digests_with_status("failed")
    queued = workers = None
    if app is not None:
        queued = queue_length(app, settings.queue)
        try:
            workers = len(app.control.ping(timeout=ping_timeout) or [])
        except Exception as e:  # noqa: BLE001  (as above: the broker may be down)
            log.warning("cannot ping the workers: %s", e)
    return PoolStatus(queued, workers, running, waiting, stalled, len(failed), failed[-5:])
