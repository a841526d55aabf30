"""`subscriptions/*.toml` → `Subscriber`s; every problem named with file, key and fix."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Collection
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from .channels import destination, destination_problems, subscriber_fields
from .errors import Problem, ScheduleError
from .gcpause import gc_paused
from .interest_input import MAX_NAME
from .models import Interests, Subscriber
from .zones import zone_known

# Besides these, the destination keys the registered channels declare (email, slack_channel, …).
_OWN = {"name", "schedule", "timezone", "max_items", "interests"}
_INTERESTS = {"description", "keywords", "exclude", "topics", "authors", "trending", "min_upvotes"}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # used with fullmatch: no final newline slips by
# Cron's nicknames, as five-field lines.
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
NEVER_WITHIN = timedelta(days=366 * 8)  # a schedule with no fire time this far ahead never fires


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _crontab_days(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday) as APScheduler 3 day names.

    APScheduler 3 numbers days from Monday = 0, so "1-5" there would mean Tuesday to Saturday;
    we expand the field ourselves so "0 8 * * 1-5" means weekdays, as in cron.
    """
    if field == "*":
        return "*"
    days: set[int] = set()

    def number(token: str) -> int:
        t = token.lower()[:3]
        if t in _DAYS:
            return _DAYS.index(t)
        if not token.isdigit() or int(token) > 7:
            raise ScheduleError(f"bad day of week {token!r}")
        return int(token) % 7 if token != "7" else 7

    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ScheduleError(f"bad step in {part!r}")
        if base == "*":
            lo, hi = 0, 6
        elif "-" in base:
            a, b = base.split("-", 1)
            lo, hi = number(a), number(b)
            if hi < lo:
                raise ScheduleError(f"bad range {base!r}")
        else:
            lo = hi = number(base)
            if step_text:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DAYS[d] for d in sorted(days))


@lru_cache(maxsize=4096)
def cron_trigger(schedule: str, timezone: str) -> BaseTrigger:
    """The APScheduler trigger for a five-field cron line or a nickname (`@daily`, …) in a time
    zone, with cron's day numbering and cron's day rule: when both day of month and day of week
    are restricted (neither starts with "*"), a day matching either fires (`0 8 1 * 1`: the 1st
    and every Monday); APScheduler alone would ask for both.

    Made once per (schedule, time zone) and shared: thousands of subscribers use a handful of
    schedules, and a trigger only computes fire times (it holds no state between calls)."""
    line = ALIASES.get(schedule.strip().lower(), schedule)
    if line.startswith("@"):
        raise ScheduleError(f"unknown nickname {schedule!r}; use one of {', '.join(ALIASES)}")
    fields = line.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected 5 fields, got {len(fields)}")
    minute, hour, day, month, dow = fields
    try:
        days = _crontab_days(dow)
        zone = ZoneInfo(timezone)
        if day.startswith("*") or dow.startswith("*"):
            return CronTrigger(
                minute=minute, hour=hour, day=day, month=month, day_of_week=days, timezone=zone
            )
        return OrTrigger(
            [
                CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=zone),
                CronTrigger(minute=minute, hour=hour, month=month, day_of_week=days, timezone=zone),
            ]
        )
    except ScheduleError:
        raise
    except ValueError as e:  # APScheduler's: a field out of range, a bad step
        raise ScheduleError(str(e)) from e


def never_fires(trigger: BaseTrigger, now: datetime | None = None) -> bool:
    """Whether a schedule has no fire time within `NEVER_WITHIN` (e.g. "0 8 31 2 *")."""
    start = now or datetime.now(UTC)
    fire = trigger.get_next_fire_time(None, start)
    return fire is None or fire - start > NEVER_WITHIN


@lru_cache(maxsize=4096)
def _never_fires_today(schedule: str, timezone: str, day: date) -> bool:
    """`never_fires` for a valid schedule, worked out once a day per (schedule, time zone):
    10,000 subscriber files share a handful of schedules."""
    return never_fires(cron_trigger(schedule, timezone))


def parse_subscriber(
    sid: str, raw: dict[str, Any], where: str, known_topics: Collection[str] | None = None
) -> tuple[Subscriber | None, list[Problem]]:
    """A `Subscriber` from a decoded subscription table, or None with every problem found."""
    problems: list[Problem] = []

    def bad(key: str, message: str) -> None:
        problems.append(Problem(where, key, message))

    if not _ID.fullmatch(sid):
        bad(
            "",
            f"the file name {sid!r} is not a usable subscriber id; rename it with letters, digits, '.', '_' or '-'",
        )
    top = _OWN | {f.name for f in subscriber_fields()}
    for key in sorted(set(raw) - top):
        bad(key, f"unknown key; the keys are {', '.join(sorted(top))}")
    name = _text(raw, "name", "", bad)
    if len(name) > MAX_NAME:
        bad("name", f"is {len(name)} characters long; write a name of at most {MAX_NAME}")
    where_to = _destination(raw, bad)
    schedule, timezone = _schedule(raw, bad)
    max_items = raw.get("max_items", 10)
    if not isinstance(max_items, int) or isinstance(max_items, bool) or not 1 <= max_items <= 200:
        bad(
            "max_items",
            f"{max_items!r} is not a whole number from 1 to 200; write e.g. max_items = 10",
        )
        max_items = 10
    interests = _interests(raw.get("interests", {}), bad, known_topics)
    interest_problems = any(p.key.startswith("interests") for p in problems)
    if not interest_problems and not (interests.has_subject or interests.trending):
        bad(
            "interests",
            "says nothing to match on; give a description, keywords, topics or authors, "
            "or trending = true",
        )
    if problems:
        return None, problems
    return Subscriber(
        id=sid,
        name=name or sid,
        schedule=schedule,
        timezone=timezone,
        max_items=max_items,
        interests=interests,
        origin=where,
        **destination(where_to),
    ), []


_Bad = Callable[[str, str], None]  # reports a problem: the key, and what is wrong with the fix


def _text(table: dict[str, Any], key: str, prefix: str, bad: _Bad) -> str:
    """A string value, stripped; "" (and a problem) when it is not a string."""
    value = table.get(key, "")
    if not isinstance(value, str):
        bad(prefix + key, f'{value!r} is not a string; write {key} = "…"')
        return ""
    return value.strip()


def _destination(raw: dict[str, Any], bad: _Bad) -> dict[str, str]:
    """The destination keys the registered channels declare, each checked by its channel."""
    where_to = {
        f.name: value for f in subscriber_fields() if (value := _text(raw, f.name, "", bad))
    }
    for key, message in destination_problems(where_to):
        bad(key, message)
    return where_to


def _schedule(raw: dict[str, Any], bad: _Bad) -> tuple[str, str]:
    """The cron line and its time zone, each checked."""
    schedule = _text(raw, "schedule", "", bad) or "0 8 * * *"
    timezone = _text(raw, "timezone", "", bad) or "UTC"
    if not zone_known(timezone):
        bad(
            "timezone",
            f'{timezone!r} is not a known time zone; use an IANA name such as "Europe/Berlin" or "UTC"',
        )
        timezone = ""
    try:
        cron_trigger(schedule, timezone or "UTC")  # a bad line raises
    except ValueError as e:
        bad(
            "schedule",
            f'{schedule!r} is not a valid cron line ({e}); write five fields, e.g. "0 8 * * 1-5"',
        )
    else:
        if _never_fires_today(schedule, timezone or "UTC", datetime.now(UTC).date()):
            bad(
                "schedule",
                f"{schedule!r} never fires (no such date within {NEVER_WITHIN.days // 366} years); "
                'write a date that exists, e.g. "0 8 28 2 *"',
            )
    return schedule, timezone


def _interests(interests_raw: Any, bad: _Bad, known_topics: Collection[str] | None) -> Interests:
    """The [interests] table: lists of phrases, topics that exist."""
    if not isinstance(interests_raw, dict):
        bad(
            "interests",
            "is not a table; write [interests] with description, keywords, exclude, topics, authors, trending",
        )
        interests_raw = {}
    for key in sorted(set(interests_raw) - _INTERESTS):
        bad(f"interests.{key}", f"unknown key; the keys are {', '.join(sorted(_INTERESTS))}")

    def phrases(key: str) -> tuple[str, ...]:
        value = interests_raw.get(key, [])
        if isinstance(value, str):
            bad(f"interests.{key}", f'is a string, not a list; write {key} = ["{value}"]')
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            bad(f"interests.{key}", f'{value!r} is not a list of strings; write {key} = ["…", "…"]')
            return ()
        return tuple(v.strip() for v in value if v.strip())

    topics = phrases("topics")
    if known_topics is not None:
        for t in topics:
            if t not in known_topics:
                bad(
                    "interests.topics", f"{t!r} is not a known topic; 'digestbot topics' lists them"
                )
    return Interests(
        description=_text(interests_raw, "description", "interests.", bad),
        keywords=phrases("keywords"),
        exclude=phrases("exclude"),
        topics=topics,
        authors=phrases("authors"),
        **_popularity(interests_raw, bad),
    )


def _popularity(interests_raw: dict[str, Any], bad: _Bad) -> dict[str, Any]:
    """`trending` (a boolean) and `min_upvotes` (a whole number ≥ 0), checked (README "Trending")."""
    trending = interests_raw.get("trending", False)
    if not isinstance(trending, bool):
        bad(
            "interests.trending",
            f"{trending!r} is not true or false; write trending = true (no quotes)",
        )
        trending = False
    floor = interests_raw.get("min_upvotes")
    if floor is not None and (isinstance(floor, bool) or not isinstance(floor, int) or floor < 0):
        bad(
            "interests.min_upvotes",
            f"{floor!r} is not a whole number of upvotes (0 or more); write e.g. min_upvotes = 5",
        )
        floor = None
    return {"trending": trending, "min_upvotes": floor}


def load_subscriptions(
    folder: Path, known_topics: Collection[str] | None = None
) -> tuple[list[Subscriber], list[Problem]]:
    """Every good subscriber in `folder`, and every problem in the bad files (which are skipped)."""
    if not folder.is_dir():
        return [], [
            Problem(
                str(folder),
                "",
                "no such folder; create it, or set subscriptions_dir in digestbot.toml or pass --subscriptions",
            )
        ]
    with gc_paused():  # 10,000 files' tables: see bot.gcpause
        return _load_files(sorted(folder.glob("*.toml")), known_topics)


def load_subscription_file(
    path: Path, known_topics: Collection[str] | None = None
) -> Subscriber | None:
    """The subscriber of one file, or None when it is missing or bad (`check` names why)."""
    if not path.is_file():
        return None
    subs, _ = _load_files([path], known_topics)
    return subs[0] if subs else None


def _load_files(
    paths: list[Path], known_topics: Collection[str] | None
) -> tuple[list[Subscriber], list[Problem]]:
    subscribers: list[Subscriber] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            # utf-8-sig: a leading BOM (Windows editors write one) is not part of the TOML
            raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except tomllib.TOMLDecodeError as e:
            problems.append(Problem(str(path), "", f"not valid TOML ({e}); fix the syntax"))
            continue
        except UnicodeDecodeError as e:
            problems.append(
                Problem(
                    str(path), "", f"not UTF-8 ({e.reason} at byte {e.start}); save it as UTF-8"
                )
            )
            continue
        except OSError as e:
            problems.append(
                Problem(str(path), "", f"cannot read it ({e.strerror}); check its permissions")
            )
            continue
        sub, found = parse_subscriber(path.stem, raw, str(path), known_topics)
        problems.extend(found)
        if sub is not None:
            subscribers.append(sub)
    return subscribers, problems
