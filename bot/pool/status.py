"""The pool at a glance: the broker's queue, the workers, and the ledger's open digests."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..config import Settings
from ..models import DigestStatus
from ..store import DigestRow, Store
from .app import make_app
from .dispatch import stalled
from .task import QUEUE_OWNERS

log = logging.getLogger("bot.pool")


@dataclass(slots=True)
class PoolStatus:
    """The pool at a glance: the broker's queue, the workers, and the ledger's open digests."""

    queued: int | None  # tasks waiting in the broker (None: no broker, or unreachable)
    workers: int | None  # workers of this queue answering (None: no broker, or unreachable)
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
                return int(
                    conn.default_channel.queue_declare(queue=queue, passive=True).message_count
                )
            except Exception as e:
                if "NOT_FOUND" in str(e) or "no queue" in str(e).lower():
                    return 0
                raise
    except Exception as e:  # noqa: BLE001  (broker errors come from kombu, redis or amqp)
        log.warning("cannot read the queue %s: %s", queue, e)
        return None


def _workers_of(app: Any, queue: str, timeout: float) -> int:
    """How many workers answer and consume `queue`: a broker shared with other deployments (or
    other Celery apps) has workers that are not this pool's."""
    answers = app.control.inspect(timeout=timeout).active_queues() or {}
    return sum(any(q.get("name") == queue for q in queues or ()) for queues in answers.values())


def pool_status(
    settings: Settings,
    store: Store,
    app: Any = None,
    ping_timeout: float = 1.0,
    now: datetime | None = None,
) -> PoolStatus:
    """Queued, running, pending and failed digests across the pool."""
    if app is None and settings.broker_url:
        app = make_app(settings)
    now = now or datetime.now(UTC)
    running = waiting = stuck = 0
    for row in store.digests_with_status(DigestStatus.PENDING):
        if stalled(row, now):
            stuck += 1
        elif row.owner in QUEUE_OWNERS:
            waiting += 1
        else:
            running += 1
    failed = store.digests_with_status(DigestStatus.FAILED)
    queued = workers = None
    if app is not None:
        queued = queue_length(app, settings.queue)
        try:
            workers = _workers_of(app, settings.queue, ping_timeout)
        except Exception as e:  # noqa: BLE001  (as above: the broker may be down)
            log.warning("cannot ping the workers: %s", e)
    return PoolStatus(queued, workers, running, waiting, stuck, len(failed), failed[-5:])
