"""Schedule arithmetic: which slot (scheduled fire time) a subscriber's digest is due for.

A cron line is read on the subscriber's *wall clock*: the fire times are computed as naive local
times (with no daylight-saving jumps), then each is placed on the real time line:

- a wall time that exists once is that instant;
- a wall time that exists twice (the autumn fall-back hour) is its first occurrence, so a
  digest due at 02:30 runs once, not twice;
- a wall time that does not exist (the spring-forward gap) runs at the transition, as cron
  does, so a digest due at 02:30 still runs once that day (at 03:00 summer time).

This mapping never goes backwards in time, so "the latest slot at or before now" and "the next
slot after now" are well defined. APScheduler 3's own CronTrigger is not used for this: on the
fall-back day it fires the doubled hour twice and can even return earlier times than it was
given, which would loop a scheduler.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from .models import Subscriber
from .subscriptions import cron_trigger

# Windows searched backwards for the latest fire time: minute-level crons finish in the first.
_WINDOWS = (
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=8),
    timedelta(days=32),
    timedelta(days=367),
)
_HORIZON = timedelta(
    days=367 * 4
)  # a cron that never fires within it (e.g. "0 0 31 2 *") never fires


def _wall(t: datetime, tz: tzinfo) -> datetime:
    """The naive local wall time of an instant."""
    return t.astimezone(tz).replace(tzinfo=None)


def to_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The UTC instant a naive local wall time stands for (first occurrence; a gap → its end)."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(first, tz) == wall:
        return first
    # In the spring-forward gap: fold=0 reads it with the offset before the jump (an instant
    # after the transition), fold=1 with the offset after (an instant before it). The
    # transition lies between; find it to the second.
    lo, hi = wall.replace(tzinfo=tz, fold=1).astimezone(UTC), first
    before = lo.astimezone(tz).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)


def _fires(schedule: str, tz: tzinfo, start_wall: datetime) -> Iterator[datetime]:
    """The schedule's fire times from `start_wall` (inclusive) on, as UTC instants, in order."""
    wall_trigger = cron_trigger(schedule, "UTC")  # UTC has no DST: a plain wall clock
    limit = start_wall + _HORIZON
    fire = wall_trigger.get_next_fire_time(None, start_wall.replace(tzinfo=UTC))
    while fire is not None and fire.replace(tzinfo=None) <= limit:
        yield to_instant(fire.replace(tzinfo=None), tz)
        fire = wall_trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))


def _zone(subscriber: Subscriber) -> tzinfo:
    return ZoneInfo(subscriber.timezone)


def latest_slot(subscriber: Subscriber, now: datetime) -> datetime | None:
    """The latest scheduled fire time at or before `now` (UTC), or None if it never fired in a year."""
    tz = _zone(subscriber)
    for window in _WINDOWS:
        found = None
        for fire in _fires(subscriber.schedule, tz, _wall(now - window, tz)):
            if fire > now:
                break
            found = fire
        if found is not None:
            return found
    return None


def slot_after(subscriber: Subscriber, t: datetime) -> datetime | None:
    """The first scheduled fire time strictly after `t` (UTC)."""
    tz = _zone(subscriber)
    # The wall time of `t` is never later than that of the next slot, so start there.
    for fire in _fires(subscriber.schedule, tz, _wall(t, tz)):
        if fire > t:
            return fire
    return None


def next_slot(subscriber: Subscriber, now: datetime) -> datetime | None:
    """The next scheduled fire time after `now` (UTC)."""
    return slot_after(subscriber, now)


def due_slot(subscriber: Subscriber, now: datetime, last: datetime | None) -> datetime | None:
    """The slot to send now: the latest fire time, if no digest was made for it or after it."""
    slot = latest_slot(subscriber, now)
    if slot is None:
        return None
    if last is not None and last >= slot:
        return None
    return slot


class SlotTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 ships no types
    """An APScheduler 3 trigger that fires at a subscriber's slots, DST-safe (see the module doc)."""

    def __init__(self, subscriber: Subscriber) -> None:
        self.subscriber = subscriber

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The first slot after the previous fire, or at/after `now` for the first one."""
        if previous_fire_time is not None:
            return slot_after(self.subscriber, previous_fire_time)
        return slot_after(self.subscriber, now - timedelta(microseconds=1))

    def __str__(self) -> str:
        return f"slots[{self.subscriber.schedule} {self.subscriber.timezone}]"
