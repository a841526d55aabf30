"""Digests left pending by a crash or a transient failure, resolved before anything new is sent."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from ..channels import channel_for
from ..errors import BotError, ChannelDownError
from ..models import Digest, DigestStatus, Outcome, OutcomeStatus, Subscriber
from ..store import DigestRow
from .send import Held, Sender

log = logging.getLogger("bot.delivery")


def recover_pending(
    sender: Sender, subscribers: Sequence[Subscriber], stop: Callable[[], bool] | None = None
) -> list[Outcome]:
    """Resolve the pending digests of these subscribers that `sender` may take now, oldest first."""
    by_id = {s.id: s for s in subscribers}
    outcomes = []
    for row in sender.store.digests_with_status(DigestStatus.PENDING):
        if stop is not None and stop():
            break
        sub = by_id.get(row.subscriber_id)
        if sub is None:
            continue  # not ours to do now, or the file is broken or gone: keep it pending
        if not sender.may_take(row) or not sender.process.hold(row.id):
            continue
        try:
            outcome = _resolve(sender, row, sub)
        finally:
            sender.process.drop(row.id)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _resolve(sender: Sender, row: DigestRow, sub: Subscriber) -> Outcome | None:
    """Take over one pending digest; mark it sent if it arrived already, else send it."""
    store = sender.store
    leased = time.monotonic()  # (a long look below: the lease is renewed before the send)
    if not store.take_over(row.id, row.owner, sender.owner, sender.lease, seen=row.lease_until):
        return None  # another process was quicker
    digest = Digest(row.id, sub, row.slot, tuple(store.digest_items(row.id)), row.more)
    name = channel_for(sub, sender.settings)
    if not sender.may_try(name, sub):  # not set up, or down: it waits, saying why
        return sender.send_held(Held(digest, name, leased))
    try:
        if sender.channel(name).already_delivered(digest):
            sender.confirm_sent(row.id, "found delivered after a restart", "found delivered")
            return Outcome(
                sub.id,
                OutcomeStatus.SENT,
                len(digest.items),
                sub.address,
                row.id,
                "recovered",
                name,
            )
    except ChannelDownError as e:  # its login or token refused: the channel is down, it waits
        return sender.channel_down(Held(digest, name, leased), e)
    except BotError as e:
        # Unknown whether it arrived: posting again could post twice, so wait for a run
        # that can tell (email cannot tell and says no; its re-send keeps the Message-ID).
        log.warning("could not check whether %s was delivered: %s", row.id, e)
        store.note_attempt(row.id, f"could not check whether it was delivered: {e}")
        store.release(row.id, sender.owner)
        return Outcome(
            sub.id, OutcomeStatus.PENDING, len(digest.items), sub.address, row.id, str(e), name
        )
    return sender.send_held(Held(digest, name, leased))
