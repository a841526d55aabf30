"""The worker side: take a digest the dispatcher claimed over from the queue, send it, confirm it.

A worker takes the digest over from `QUEUED` (or `REQUEUED`) with a compare-and-swap before it sends, so a task
delivered twice finds the digest taken or sent and does nothing; a task whose worker was killed
is redelivered (late acknowledgement) or re-enqueued by the dispatcher (owner `REQUEUED`), and
the digest is taken over from its dead owner. A digest that may have been tried before (any
owner but `QUEUED`, or a try counted) is looked for first (Slack's channel history) and sent
only if it is not there; email cannot tell and re-sends it with the same Message-ID: the one
documented in-flight twin.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ..channels import CHANNELS, Channel, channel_for
from ..channels import rates as channel_rates
from ..config import Settings
from ..delivery import LEASE, Held, RetryPolicy, Sender, open_channel
from ..errors import BotError, ChannelDownError, StoreError
from ..models import Digest, DigestStatus, Outcome, OutcomeStatus, Subscriber
from ..store import ANY_LEASE, DigestRow, Store, open_store
from .ratelimit import RateLimited, ratelimit_url
from .task import MAX_RETRIES, QUEUE_LEASE, QUEUE_OWNERS, QUEUED, REQUEUED

log = logging.getLogger("bot.pool")

ONE_TRY = RetryPolicy(
    attempts=1
)  # a worker tries once per task: Celery retries, the worker stays free
# A worker process lives for days: a channel it found down (its server unreachable twice in a
# row, its login, certificate or Slack token refused) is left alone for this long, then tried
# again by the next digest that needs it: once, and down again if it still is. Longer than the
# 240 s between a task's retries at most (`run_task`: a down channel costs one try per process
# in that time, not one per retry of each digest), and shorter than the span of a task's
# MAX_RETRIES retries (up to 795 s, about 400 s on average with their jitter: a digest waiting
# when the channel is mended usually goes out on one of them, not after the 2-hour
# QUEUE_LEASE). A wrong password: one AUTH per worker process every 5 minutes.
DOWN_FOR = 300.0


def pool_channel(name: str, settings: Settings) -> Channel:
    """The channel for `name`, wrapped in the pool-wide rate limit when it has one."""
    inner = open_channel(name, settings)
    rate, per_destination = channel_rates(settings).get(name, (0.0, False))
    url = ratelimit_url(settings)
    if rate > 0 and url:
        return RateLimited(inner, url, f"{settings.queue}:rate:{name}", rate, per_destination)
    if rate > 0:
        log.warning("no Redis for the shared %s rate limit; set DIGESTBOT_RATELIMIT_URL", name)
    return inner


class PoolDeliverer:
    """One worker's sender: sends digests the dispatcher claimed, under the pool's shared limits.

    A `Sender` with one try per task (`ONE_TRY`), channels made by `pool_channel`, and a channel
    found down tried again after `DOWN_FOR` seconds (`clock`: time.monotonic); `lease`: how long
    it holds a digest between renewals (LEASE).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        retry: RetryPolicy = ONE_TRY,
        clock: Callable[[], float] = time.monotonic,
        lease: timedelta = LEASE,
    ) -> None:
        self.sender = Sender(
            settings,
            store,
            retry,
            lease=lease,
            make_channel=pool_channel,
            down_for=DOWN_FOR,
            clock=clock,
        )
        self.store = store

    @property
    def owner(self) -> str:
        """This worker's owner token (host:pid)."""
        return self.sender.owner

    def close(self) -> None:
        """Close every channel and limiter."""
        self.sender.close()

    def may_take(self, row: DigestRow) -> bool:
        """Whether this worker may send `row` now: queued, ours, or its owner's lease is void."""
        return row.owner in QUEUE_OWNERS or self.sender.may_take(row)

    def handle(self, did: str, sub: Subscriber) -> Outcome:
        """Take a claimed digest over (compare-and-swap), send it and confirm it; skip it if done."""
        row = self.store.get_digest(did)
        if row is None:
            return Outcome(
                sub.id, OutcomeStatus.SKIPPED, digest_id=did, reason="no such digest in the ledger"
            )
        if row.status != DigestStatus.PENDING:
            return Outcome(
                sub.id, OutcomeStatus.SKIPPED, digest_id=did, reason=f"already {row.status}"
            )
        if not self.may_take(row):
            return Outcome(
                sub.id, OutcomeStatus.SKIPPED, digest_id=did, reason=f"in flight on {row.owner}"
            )
        # Taken from the queue whatever its lease; from a sender only on the lease it was seen
        # with (a sender that renewed it meanwhile keeps it).
        seen = ANY_LEASE if row.owner in QUEUE_OWNERS else row.lease_until
        leased = time.monotonic()  # (a long look below: the lease is renewed before the send)
        if not self.store.take_over(did, row.owner, self.owner, self.sender.lease, seen=seen):
            return Outcome(
                sub.id, OutcomeStatus.SKIPPED, digest_id=did, reason="another worker took it"
            )
        digest = Digest(did, sub, row.slot, tuple(self.store.digest_items(did)), row.more)
        name = row.channel if row.channel in CHANNELS else channel_for(sub, self.sender.settings)
        if (row.owner != QUEUED or row.attempts) and self.sender.may_try(name, sub):
            # Tried before, maybe delivered (its worker died, its confirm was lost, it failed
            # after reaching the server): look before sending again.
            try:
                if self.sender.channel(name).already_delivered(digest):
                    self.sender.confirm_sent(did, "found delivered after a try", "found delivered")
                    return Outcome(
                        sub.id, OutcomeStatus.SENT, len(digest.items), sub.address, did, "recovered"
                    )
            except ChannelDownError as e:  # its login or token refused: down, the digest waits
                return self.sender.channel_down(Held(digest, name, leased), e)
            except BotError as e:
                # Unknown whether it arrived: sending could post twice; it waits for a retry
                # that can tell (email cannot tell and says no: its re-send keeps the Message-ID).
                reason = f"could not check whether it was delivered: {e}"
                log.warning("digest %s: %s", did, reason)
                self.store.note_attempt(did, reason)
                self.store.release(did, self.owner)
                return Outcome(
                    sub.id, OutcomeStatus.PENDING, len(digest.items), sub.address, did, reason, name
                )
        return self.sender.send(digest, name, leased)

    def release(self, did: str) -> bool:
        """Give a pending digest back to the queue, so any worker may take it on the retry."""
        # The sender may have let it go already (owner ""), after its last try. REQUEUED: it
        # was tried, so the next worker looks before sending it again.
        # Its own digest, or one let go: whatever its lease.
        return any(
            self.store.take_over(did, held_by, REQUEUED, QUEUE_LEASE, seen=ANY_LEASE)
            for held_by in (self.owner, "")
        )


def close_deliverer(app: Any) -> None:
    """Close the deliverer `run_task` made for this worker process, if any: its lease thread,
    channels and store (`start_worker` calls it when the worker stops)."""
    deliverer: PoolDeliverer | None = getattr(app, "digestbot_deliverer", None)
    if deliverer is not None:
        app.digestbot_deliverer = None
        deliverer.close()
        deliverer.store.close()


def run_task(task: Any, did: str, data: dict[str, Any]) -> str:
    """The Celery task's body: one deliverer per worker process, a retry for a transient failure."""
    app = task.app
    deliverer: PoolDeliverer | None = getattr(app, "digestbot_deliverer", None)
    if deliverer is None:
        settings: Settings = app.digestbot_settings
        deliverer = PoolDeliverer(settings, open_store(settings))
        app.digestbot_deliverer = deliverer
    try:
        outcome = deliverer.handle(did, Subscriber.from_dict(data))
    except StoreError as e:  # the database is away: keep the task, try again shortly
        log.warning("digest %s: %s", did, e)
        raise task.retry(countdown=random.uniform(5, 30), exc=e) from e
    log.info(
        "digest %s for %s: %s%s",
        did,
        outcome.subscriber,
        outcome.status,
        f" ({outcome.reason})" if outcome.reason else "",
    )
    if outcome.status == OutcomeStatus.PENDING:
        # A transient failure: give the digest back and retry later.
        deliverer.release(did)
        countdown = random.uniform(0, min(240, 5 * 2**task.request.retries))
        if task.request.retries < MAX_RETRIES:
            raise task.retry(countdown=countdown)
    return str(outcome.status)
