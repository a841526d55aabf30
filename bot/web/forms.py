"""The subscribe and manage forms: read, check and turn into a schedule and `Interests`."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from ..addresses import normalize
from ..interest_input import MAX_DESCRIPTION, MAX_NAME, MAX_PHRASE, MAX_PHRASES, phrases
from ..models import Interests
from ..zones import zone_known

_DAILY = re.compile(r"^0 (\d{1,2}) \* \* \*$")
_WEEKLY = re.compile(r"^0 (\d{1,2}) \* \* 1$")


@dataclass(slots=True)
class Preferences:
    """What a subscriber chose on a form, checked."""

    email: str = ""
    name: str = ""
    interests: Interests = field(default_factory=Interests)
    frequency: str = "daily"  # daily | weekly
    hour: int = 8
    timezone: str = "UTC"
    max_items: int = 10

    @property
    def schedule(self) -> str:
        """The cron line: every day, or Mondays, at `hour` in the subscriber's time zone."""
        return f"0 {self.hour} * * {'1' if self.frequency == 'weekly' else '*'}"


@lru_cache(maxsize=1)
def timezones() -> tuple[str, ...]:
    """IANA time zone names a browser may report, sorted, UTC first."""
    names = sorted(
        z
        for z in available_timezones()
        if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix", "right"))
    )
    return ("UTC", *names)


def frequency_of(schedule: str) -> tuple[str, int]:
    """The (frequency, hour) a schedule made by these forms stands for; ("custom", 8) otherwise."""
    for kind, pattern in (("daily", _DAILY), ("weekly", _WEEKLY)):
        m = pattern.match(schedule)
        if m and int(m.group(1)) < 24:
            return kind, int(m.group(1))
    return "custom", 8


def _number(text: str) -> bool:
    """ASCII digits only (`isdigit` takes `²`, which `int` refuses), and not absurdly many."""
    return text.isascii() and text.isdecimal() and len(text) <= 4


def chosen(prefs: Preferences) -> dict[str, Any]:
    """What a confirmation link carries: the settings its request chose (not the address)."""
    return {
        "n": prefs.name,
        "i": prefs.interests.to_dict(),
        "f": prefs.frequency,
        "h": prefs.hour,
        "z": prefs.timezone,
        "m": prefs.max_items,
    }


def from_chosen(data: Mapping[str, Any]) -> Preferences:
    """`chosen`'s data back as `Preferences` (from a signed link, so made by `chosen`)."""
    return Preferences(
        name=str(data.get("n", "")),
        interests=Interests.from_dict(data.get("i") or {}),
        frequency="weekly" if data.get("f") == "weekly" else "daily",
        hour=int(data.get("h", 8)) % 24,
        timezone=str(data.get("z", "UTC")),
        max_items=min(max(int(data.get("m", 10)), 1), 50),
    )


def describe(prefs: Preferences, *, words: bool = True) -> str:
    """One line saying what a subscription request chose (the confirmation page and mail).

    `words=False` (the mail) counts the keywords and the description instead of quoting them:
    whoever posts a form must not get their own text mailed to someone else's address.
    """
    i = prefs.interests
    if words:
        what = [
            f"keywords {', '.join(i.keywords)}" if i.keywords else "",
            f"excluding {', '.join(i.exclude)}" if i.exclude else "",
            f"described as {i.description[:80]!r}" if i.description else "",
        ]
    else:
        what = [
            f"{len(i.keywords)} keyword(s)" if i.keywords else "",
            f"{len(i.exclude)} excluded phrase(s)" if i.exclude else "",
            "a description" if i.description else "",
        ]
    what.insert(0, f"topics {', '.join(i.topics)}" if i.topics else "")  # from our list
    if i.trending:
        floor = f" with at least {i.min_upvotes} upvotes" if i.min_upvotes else ""
        what.insert(0, f"trending papers{floor}")
    return (
        f"{prefs.frequency} at {prefs.hour}:00 ({prefs.timezone}), up to {prefs.max_items} papers"
        + "".join(f"; {w}" for w in what if w)
    )


def _trending(form: Mapping[str, str], errors: dict[str, str]) -> tuple[bool, int | None]:
    """The trending checkbox and the optional upvote floor (README "Trending")."""
    trending = form.get("trending", "") in ("on", "1", "true")
    text = form.get("min_upvotes", "").strip()
    if not text:
        return trending, None
    if not _number(text):
        errors["min_upvotes"] = "Give a whole number of upvotes (0 or more), or leave it empty."
        return trending, None
    return trending, int(text)


def parse_preferences(
    form: Mapping[str, str], topics: Collection[str], chosen_topics: list[str], *, need_email: bool
) -> tuple[Preferences, dict[str, str]]:
    """The preferences a form gives, and a message per field that is wrong (empty when all is well)."""
    errors: dict[str, str] = {}
    prefs = Preferences()
    prefs.email = form.get("email", "").strip()
    if need_email:
        address = normalize(prefs.email)
        if address is None:
            errors["email"] = "Give an email address such as alice@example.org."
        else:
            prefs.email = address
    prefs.name = " ".join(form.get("name", "").split())[:MAX_NAME]
    description = form.get("description", "").strip()
    if len(description) > MAX_DESCRIPTION:
        errors["description"] = f"Keep the description under {MAX_DESCRIPTION} characters."
    keywords, exclude = phrases(form.get("keywords", "")), phrases(form.get("exclude", ""))
    for key, values in (("keywords", keywords), ("exclude", exclude)):
        if len(values) > MAX_PHRASES or any(len(v) > MAX_PHRASE for v in values):
            errors[key] = (
                f"Give at most {MAX_PHRASES} phrases of at most {MAX_PHRASE} characters, separated by commas."
            )
    unknown = [t for t in chosen_topics if t not in topics]
    if unknown:
        errors["topics"] = "Choose topics from the list."
    picked = tuple(dict.fromkeys(t for t in chosen_topics if t in topics))
    trending, floor = _trending(form, errors)
    prefs.interests = Interests(
        description=description,
        keywords=keywords,
        exclude=exclude,
        topics=picked,
        trending=trending,
        min_upvotes=floor,
    )
    if not (description or keywords or picked or trending) and not {
        "description",
        "keywords",
        "topics",
    } & set(errors):
        errors["interests"] = (
            "Tell us what to look for: pick a topic, give keywords, describe your interests "
            "or choose trending papers."
        )
    prefs.frequency = form.get("frequency", "daily")
    if prefs.frequency not in ("daily", "weekly"):
        errors["frequency"] = "Choose daily or weekly."
        prefs.frequency = "daily"
    hour = form.get("hour", "8").strip()
    if not _number(hour) or not 0 <= int(hour) <= 23:
        errors["hour"] = "Choose an hour from 0 to 23."
    else:
        prefs.hour = int(hour)
    prefs.timezone = form.get("timezone", "UTC").strip() or "UTC"
    if not zone_known(prefs.timezone):
        errors["timezone"] = "Choose a time zone from the list."
        prefs.timezone = "UTC"
    items = form.get("max_items", "10").strip()
    if not _number(items) or not 1 <= int(items) <= 50:
        errors["max_items"] = "Choose from 1 to 50 papers per digest."
    else:
        prefs.max_items = int(items)
    return prefs, errors
