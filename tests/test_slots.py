"""Slots: the DST days, weekday schedules, catch-up after downtime and clock jumps, with the clock controlled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

from bot.config import Settings
from bot.delivery import run_once
from bot.models import Entry, Interests, Subscriber
from bot.slots import SlotTrigger, due_slot, latest_slot, next_slot, slot_after, to_instant
from bot.store import Store

BERLIN = ZoneInfo("Europe/Berlin")


def sub(schedule: str, tz: str = "Europe/Berlin", sid: str = "alice") -> Subscriber:
    return Subscriber(
        id=sid,
        email=f"{sid}@example.org",
        schedule=schedule,
        timezone=tz,
        interests=Interests(keywords=("quantization",)),
    )


def slots_between(s: Subscriber, start: datetime, end: datetime) -> list[datetime]:
    out, t = [], start
    while (t := slot_after(s, t)) is not None and t < end:  # type: ignore[assignment]
        out.append(t)
    return out


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def test_spring_forward_day_runs_the_missing_0230_once_at_the_transition() -> None:
    s = sub("30 2 * * *")
    day = slots_between(s, utc(2026, 3, 28, 12), utc(2026, 3, 30, 12))
    assert [t.astimezone(BERLIN).strftime("%d %H:%M %Z") for t in day] == [
        "29 03:00 CEST",  # 02:30 does not exist on 29 March: run when the clock jumps, as cron does
        "30 02:30 CEST",
    ]


def test_fall_back_day_runs_the_doubled_0230_once() -> None:
    s = sub("30 2 * * *")
    day = slots_between(s, utc(2026, 10, 24, 12), utc(2026, 10, 26, 12))
    assert [t.isoformat() for t in day] == [
        "2026-10-25T00:30:00+00:00",
        "2026-10-26T01:30:00+00:00",
    ]
    # between the two 02:30s (it is 02:15 CET, the second time round) nothing new is due
    assert latest_slot(s, utc(2026, 10, 25, 1, 15)) == utc(2026, 10, 25, 0, 30)
    assert next_slot(s, utc(2026, 10, 25, 1, 15)) == utc(2026, 10, 26, 1, 30)


def test_half_hourly_schedule_through_the_fall_back_hour_never_goes_backwards() -> None:
    s = sub("*/30 * * * *")
    fires = slots_between(s, utc(2026, 10, 24, 22), utc(2026, 10, 25, 4))
    assert fires == sorted(set(fires))
    # 02:00 and 02:30 once each (summer time), then 03:00 CET: the repeated hour is not re-run
    assert [t.astimezone(BERLIN).strftime("%H:%M") for t in fires] == [
        "00:30",
        "01:00",
        "01:30",
        "02:00",
        "02:30",
        "03:00",
        "03:30",
        "04:00",
        "04:30",
    ]


def test_gap_maps_to_the_transition_instant() -> None:
    assert to_instant(datetime(2026, 3, 29, 2, 30), BERLIN) == utc(2026, 3, 29, 1, 0)
    assert to_instant(datetime(2026, 10, 25, 2, 30), BERLIN) == utc(2026, 10, 25, 0, 30)
    assert to_instant(datetime(2026, 7, 1, 8, 0), BERLIN) == utc(2026, 7, 1, 6, 0)


def test_weekday_schedule_skips_the_weekend() -> None:
    s = sub("0 8 * * 1-5")
    week = slots_between(s, utc(2026, 11, 27, 12), utc(2026, 12, 5, 12))  # Fri noon .. next Sat
    assert [t.astimezone(BERLIN).strftime("%a %H:%M") for t in week] == [
        "Mon 08:00",
        "Tue 08:00",
        "Wed 08:00",
        "Thu 08:00",
        "Fri 08:00",
    ]
    # on Sunday the latest slot is still Friday's
    assert latest_slot(s, utc(2026, 11, 29, 12)) == utc(2026, 11, 27, 7)


def test_slot_trigger_follows_the_slots() -> None:
    s = sub("30 2 * * *")
    trig = SlotTrigger(s)
    first = trig.get_next_fire_time(None, utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)
    assert trig.get_next_fire_time(first, utc(2026, 10, 25, 1, 31)) == utc(2026, 10, 26, 1, 30)
    assert trig.get_next_fire_time(None, utc(2026, 10, 25, 0, 30)) == utc(
        2026, 10, 25, 0, 30
    )  # at now counts


# --- the pipeline on a controlled clock ----------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> tuple[Settings, Store]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", outbox_dir=tmp_path / "outbox"
    )
    return settings, Store(settings.database_url)


def add_paper(store: Store, n: int, now: datetime) -> None:
    store.upsert_entries(
        [
            Entry(
                id=f"arxiv:2611.{n:05d}",
                title=f"Quantization trick number {n}",
                summary="Low-bit quantization of language models.",
                published=now,
            )
        ],
        now=now,
    )


def sent_slots(store: Store, sid: str) -> list[datetime]:
    return sorted(r.slot for r in store.history(sid, 1000) if r.status == "sent")


def step_through(
    settings: Settings,
    store: Store,
    subs: list[Subscriber],
    start: datetime,
    end: datetime,
    every: timedelta,
) -> None:
    """Run `run --once` every `every` on a travelling clock, adding a paper each time."""
    t, n = start, 0
    with time_machine.travel(start, tick=False) as clock:
        while t < end:
            n += 1
            add_paper(store, n, t)
            run_once(settings, store, subs)
            t += every
            clock.move_to(t)


def test_spring_forward_day_one_digest(world: tuple[Settings, Store]) -> None:
    settings, store = world
    s = sub("30 2 * * *")
    step_through(
        settings, store, [s], utc(2026, 3, 28, 18), utc(2026, 3, 29, 18), timedelta(minutes=15)
    )
    assert [t.astimezone(BERLIN).strftime("%d %H:%M") for t in sent_slots(store, "alice")] == [
        "28 02:30",  # the first run catches up on the day before
        "29 03:00",  # the spring-forward day: once
    ]


def test_fall_back_day_one_digest(world: tuple[Settings, Store]) -> None:
    settings, store = world
    s = sub("30 2 * * *")
    step_through(
        settings, store, [s], utc(2026, 10, 24, 18), utc(2026, 10, 25, 18), timedelta(minutes=15)
    )
    # the day before (the first run's catch-up), then the fall-back day: once, not at both 02:30s
    assert sent_slots(store, "alice") == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30)]


def test_weekday_schedule_sends_five_digests_a_week(world: tuple[Settings, Store]) -> None:
    settings, store = world
    s = sub("0 8 * * 1-5")
    step_through(
        settings, store, [s], utc(2026, 11, 28, 0), utc(2026, 12, 6, 0), timedelta(hours=2)
    )  # Sat .. next Sun
    assert [t.astimezone(BERLIN).strftime("%a") for t in sent_slots(store, "alice")] == [
        "Fri",
        "Mon",
        "Tue",
        "Wed",
        "Thu",
        "Fri",
    ]  # Friday's is the first run's catch-up


def test_catch_up_after_downtime_sends_one_digest_for_the_latest_slot(
    world: tuple[Settings, Store],
) -> None:
    settings, store = world
    s = sub("0 * * * *", "UTC")  # hourly: 3 days down would be 72 missed slots
    with time_machine.travel(utc(2026, 11, 20, 9, 5), tick=False) as clock:
        add_paper(store, 1, utc(2026, 11, 20, 9))
        run_once(settings, store, [s])
        clock.move_to(utc(2026, 11, 23, 14, 20))
        add_paper(store, 2, utc(2026, 11, 23, 14))
        report = run_once(settings, store, [s])
    assert [o.status for o in report.outcomes] == ["sent"]
    assert sent_slots(store, "alice") == [utc(2026, 11, 20, 9), utc(2026, 11, 23, 14)]


def test_clock_jumping_back_sends_nothing_twice_and_forward_sends_one(
    world: tuple[Settings, Store],
) -> None:
    settings, store = world
    s = sub("0 8 * * *", "UTC")
    with time_machine.travel(utc(2026, 11, 20, 8, 1), tick=False) as clock:
        add_paper(store, 1, utc(2026, 11, 20, 8))
        run_once(settings, store, [s])
        clock.move_to(utc(2026, 11, 19, 9))  # a day back: by the clock, yesterday's 08:00 looks due
        add_paper(store, 2, utc(2026, 11, 19, 9))
        assert [o.status for o in run_once(settings, store, [s]).outcomes] == ["not-due"]
        clock.move_to(utc(2026, 11, 25, 9))  # jumps five days ahead
        assert [o.status for o in run_once(settings, store, [s]).outcomes] == ["sent"]
        assert [o.status for o in run_once(settings, store, [s]).outcomes] == ["not-due"]
    assert sent_slots(store, "alice") == [utc(2026, 11, 20, 8), utc(2026, 11, 25, 8)]


def test_due_slot_is_none_once_the_slot_was_made() -> None:
    s = sub("0 8 * * *", "UTC")
    now = utc(2026, 11, 20, 9)
    assert due_slot(s, now, None) == utc(2026, 11, 20, 8)
    assert due_slot(s, now, utc(2026, 11, 20, 8)) is None
    assert due_slot(s, now, utc(2026, 11, 19, 8)) == utc(2026, 11, 20, 8)


def test_a_schedule_on_the_1st_and_on_mondays_gets_both_slots_dst_safe() -> None:
    """Cron ORs day of month and day of week: `0 8 1 * 1` is the 1st and every Monday, on the
    subscriber's wall clock through the autumn change (Sunday 25 October 2026)."""
    s = sub("0 8 1 * 1")
    got = slots_between(s, utc(2026, 10, 18), utc(2026, 11, 10))
    assert [t.astimezone(BERLIN).strftime("%a %d %b %H:%M %Z") for t in got] == [
        "Mon 19 Oct 08:00 CEST",
        "Mon 26 Oct 08:00 CET",
        "Sun 01 Nov 08:00 CET",
        "Mon 02 Nov 08:00 CET",
        "Mon 09 Nov 08:00 CET",
    ]
    assert latest_slot(s, utc(2026, 11, 1, 12)) == utc(2026, 11, 1, 7)


def test_a_nickname_schedule_runs_on_the_wall_clock() -> None:
    s = sub("@weekly")  # Sunday 00:00 in Berlin
    assert next_slot(s, utc(2026, 10, 20)) == utc(2026, 10, 24, 22)  # CEST: UTC+2
    assert next_slot(s, utc(2026, 10, 26)) == utc(2026, 10, 31, 23)  # CET: UTC+1
