"""What travels through the broker: one claimed digest's id and its subscriber, as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..models import Subscriber

TASK = "digestbot.deliver"
# The owner of a claimed digest waiting in the broker, never tried: no host:pid, never "dead".
QUEUED = "(queued)"
# The owner of a digest back in the broker after a worker held it (its task given back after a
# failed try, or queued again after its worker died or its lease ran out): it may have been
# delivered, so the worker that takes it looks first (Slack's channel history), as the single
# process's recovery does. Never tried digests are QUEUED: that look is skipped for them.
REQUEUED = "(queued again)"
QUEUE_OWNERS = (QUEUED, REQUEUED)
QUEUE_LEASE = timedelta(
    hours=2
)  # a queued digest not taken within this is enqueued again (its task was lost)
# A digest's lease from its claim until its task is in the broker: a dispatcher killed, or a
# broker failing, between the two leaves it to be enqueued again this soon, not after QUEUE_LEASE.
ENQUEUE_LEASE = timedelta(minutes=5)
MAX_RETRIES = (
    8  # Celery retries of a transient failure; then the dispatcher's re-enqueue takes over
)


@dataclass(frozen=True, slots=True)
class QueuedDigest:
    """A task: send the claimed digest `digest_id` to `subscriber`."""

    digest_id: str
    subscriber: Subscriber

    def args(self) -> list[Any]:
        """The task's JSON-safe arguments."""
        return [self.digest_id, self.subscriber.to_dict()]
