"""What travels through the broker: one claimed digest's id and its subscriber, as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from ..models import Interests, Subscriber

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
        return [self.digest_id, subscriber_to_dict(self.subscriber)]


def subscriber_to_dict(sub: Subscriber) -> dict[str, Any]:
    """A subscriber as JSON-safe data for a task message."""
    return asdict(sub)


def subscriber_from_dict(data: Mapping[str, Any]) -> Subscriber:
    """A subscriber back from a task message."""
    i = data.get("interests") or {}
    interests = Interests(
        i.get("description", ""),
        *(tuple(i.get(k) or ()) for k in ("keywords", "exclude", "topics", "authors")),
    )
    known = Subscriber.__dataclass_fields__  # a newer scheduler may send fields this worker lacks
    return Subscriber(
        **{k: v for k, v in data.items() if k in known and k != "interests"}, interests=interests
    )
