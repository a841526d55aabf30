"""What travels through the broker: one claimed digest's id and its subscriber, as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..models import Subscriber

TASK = "digestbot.deliver"
QUEUED = (
    "(queued)"  # the owner of a claimed digest waiting in the broker; no host:pid, never "dead"
)
QUEUE_LEASE = timedelta(
    hours=2
)  # a queued digest not taken within this is enqueued again (its task was lost)
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
