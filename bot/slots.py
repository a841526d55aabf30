"""Schedule arithmetic: which slot (scheduled fire time) a subscriber's digest is due for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .models import Subscriber
from .subscriptions import cron_trigger

# Windows searched backwards for the latest fire time: minute-level crons finish in the first.
_WINDOWS = (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=32), timedelta(days=367))


def latest_slot(subscriber: Subscriber, now: datetime) -> datetime | None:
    """The latest scheduled fire time at or before `now` (UTC), or None if it never fired in a year."""
    trigger = cron_trigger(subscriber.schedule, subscriber.timezone)
    for window in _WINDOWS:
        start = now - window
        fire = trigger.get_next_fire_time(None, start)
        found = None
        while fire is not None and fire <= now:
            found = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if found is not None:
            return found.astimezone(UTC)
    return None


def next_slot(subscriber: Subscriber, now: datetime) -> datetime | None:
    """The next scheduled fire time after `now` (UTC)."""
    trigger = cron_trigger(subscriber.schedule, subscriber.timezone)
    fire = trigger.get_next_fire_time(None, now + timedelta(seconds=1))
    return fire.astimezone(UTC) if fire else None


def due_slot(subscriber: Subscriber, now: datetime, last: datetime | None) -> datetime | None:
    """The slot to send now: the latest fire time, if no digest was made for it or after it."""
    slot = latest_slot(subscriber, now)
    if slot is None:
        return None
    if last is not None and last >= slot:
        return None
    return slot
