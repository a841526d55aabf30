"""Past one machine: one dispatcher claims due digests in the ledger, a Celery pool sends them.

    task       what travels through the broker (`QueuedDigest`, the subscriber as JSON, `QUEUED`,
               `REQUEUED`)
    ratelimit  the rate limits shared by every worker (Redis token buckets, `RateLimited`)
    worker     a worker's side: `PoolDeliverer` takes a queued digest over and sends it
    app        the Celery app and its delivery task; `start_worker`
    dispatch   the dispatcher's side: claim what is due, enqueue it, re-enqueue what stalled
    status     the pool at a glance (`digestbot status`)

Workers send with `bot.delivery`'s `Sender`; see docs/scaling.md.
"""

from __future__ import annotations

from .app import make_app, require_pool, start_worker
from .dispatch import (
    DispatchReport,
    dispatch_due,
    dispatch_tick,
    enqueue,
    requeue_stalled,
    restore_unacked,
    run_dispatcher,
    stalled,
)
from .ratelimit import RateLimited, SharedRateLimiter, ratelimit_url
from .status import PoolStatus, pool_status, queue_length
from .task import (
    ENQUEUE_LEASE,
    MAX_RETRIES,
    QUEUE_LEASE,
    QUEUED,
    REQUEUED,
    TASK,
    QueuedDigest,
)
from .worker import PoolDeliverer, pool_channel, run_task

__all__ = [
    "ENQUEUE_LEASE",
    "MAX_RETRIES",
    "QUEUED",
    "QUEUE_LEASE",
    "REQUEUED",
    "TASK",
    "DispatchReport",
    "PoolDeliverer",
    "PoolStatus",
    "QueuedDigest",
    "RateLimited",
    "SharedRateLimiter",
    "dispatch_due",
    "dispatch_tick",
    "enqueue",
    "make_app",
    "pool_channel",
    "pool_status",
    "queue_length",
    "ratelimit_url",
    "requeue_stalled",
    "require_pool",
    "restore_unacked",
    "run_dispatcher",
    "run_task",
    "stalled",
    "start_worker",
]
