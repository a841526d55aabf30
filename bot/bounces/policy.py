"""What a bounce does to a subscriber: the suspension policy and a complaint's unsubscribe.

A hard bounce for "no such user" (5.1.1, or a 550 saying the user is unknown) suspends at once;
otherwise `bounce_hard_limit` hard bounces within `bounce_window_days` suspend; soft bounces are
recorded and never suspend alone; a complaint unsubscribes. README "Bounces and complaints".
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from enum import StrEnum

from ..config import Settings
from ..store import BounceRow, Store
from ..text import clip

log = logging.getLogger("bot.bounces")


class Kind(StrEnum):
    """What came back: the `bounces.kind` strings."""

    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"


class Action(StrEnum):
    """What a recorded bounce did to its subscriber."""

    NONE = ""
    SUSPENDED = "suspended"
    UNSUBSCRIBED = "unsubscribed"


_NO_SUCH_USER = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|"
    r"recipient address rejected|mailbox not found|invalid recipient|address rejected",
    re.IGNORECASE,
)


def no_such_user(code: str, reason: str) -> bool:
    """Whether a hard bounce says the address does not exist (5.1.1, or 550 + "user unknown")."""
    words = code.split()
    if "5.1.1" in words or "5.1.10" in words:
        return True
    return "550" in words and bool(_NO_SUCH_USER.search(reason))


def unsubscribe(store: Store, sid: str) -> None:
    """Unsubscribe `sid`: a web subscriber's row, else a status that wins over its file."""
    if store.web_subscriber(sid) is not None:
        store.set_web_status(sid, "unsubscribed")
    else:
        store.set_subscriber_status(sid, "unsubscribed")


def record(store: Store, settings: Settings, bounce: BounceRow) -> Action:
    """Record a bounce or complaint and apply the policy; what it did to the subscriber. One
    read again (the same Message-ID) is not counted again; the policy still applies, so a run
    that stopped between recording and suspending finishes the job."""
    if not store.add_bounce(bounce):
        log.info("%s: bounce %s recorded already", bounce.subscriber_id, bounce.message_id[:80])
    sid, what = bounce.subscriber_id, f"{bounce.code} {clip(bounce.reason, 200)}".strip()
    if bounce.kind == Kind.COMPLAINT:
        unsubscribe(store, sid)
        log.warning("%s complained (marked a digest as spam): unsubscribed", sid)
        return Action.UNSUBSCRIBED
    if bounce.kind != Kind.HARD:
        log.info("%s: soft bounce recorded (%s)", sid, what)
        return Action.NONE
    day = f"{bounce.at:%Y-%m-%d}"
    if no_such_user(bounce.code, bounce.reason):
        why = f"hard bounce on {day}, no such user: {what}"
    else:
        days, limit = settings.bounce_window_days, settings.bounce_hard_limit
        count = store.count_bounces(sid, Kind.HARD, bounce.at - timedelta(days=days))
        if count < limit:
            log.info("%s: hard bounce %d of %d in %d days (%s)", sid, count, limit, days, what)
            return Action.NONE
        why = f"{count} hard bounces in {days} days, the last on {day}: {what}"
    if not store.suspend(sid, why, bounce.at):
        return Action.NONE  # suspended already
    log.warning("%s suspended: %s; 'digestbot resume %s' lifts it", sid, why, sid)
    return Action.SUSPENDED
