"""A Slack member as digestbot sees them: their subscriber id and `Subscriber`, schedules in words,
and the one-line description the slash command and App Home show."""

from __future__ import annotations

import re
from datetime import datetime

from ..models import Interests, Subscriber
from ..render import slack_escape
from ..store import SlackMemberRow
from ..zones import zone_known, zone_or_utc

ORIGIN = "slack"
USER_FIELD = "slack_user"  # the subscriber field of the Slack channel: "<team id>:<user id>"
_ID = re.compile(r"^[A-Z0-9]{2,32}$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAILY = re.compile(r"^0 (\d{1,2}) \* \* \*$")
_DAILY_MIN = re.compile(r"^(\d{1,2}) (\d{1,2}) \* \* \*$")
_WEEKLY = re.compile(r"^(\d{1,2}) (\d{1,2}) \* \* (mon|tue|wed|thu|fri|sat|sun)$")
_WHEN = re.compile(
    r"^(daily|weekly\s+(mon|tue|wed|thu|fri|sat|sun)[a-z]*)\s+(\d{1,2}):(\d{2})(?:\s+(\S+))?$",
    re.IGNORECASE,
)


def slack_id_ok(value: str) -> bool:
    """A Slack team or user id (upper-case letters and digits): anything else is never looked up."""
    return bool(_ID.match(value))


def member_key(value: str) -> tuple[str, str] | None:
    """(team, user) from a `slack_user` value "T…:U…", or None when it is not one."""
    team, _, user = value.partition(":")
    return (team, user) if slack_id_ok(team) and slack_id_ok(user) else None


def user_field_ok(value: str) -> bool:
    """Whether `value` is a `slack_user` value ("T0123:U0456")."""
    return member_key(value) is not None


def subscriber_id(team_id: str, user_id: str) -> str:
    """The subscriber id of a member: unique across workspaces (the team id is part of it)."""
    return f"slack-{team_id}-{user_id}"


def slack_subscriber(row: SlackMemberRow) -> Subscriber:
    """The `Subscriber` a member row stands for (origin "slack"; the DM is found when sending).
    A stored zone this host does not know becomes UTC, with a warning: it never stops planning."""
    sid = subscriber_id(row.team_id, row.user_id)
    zone = zone_or_utc(
        row.zone, f"Slack member {sid}", "have them run `/papers schedule daily 08:00 <zone>`"
    )
    return Subscriber(
        id=sid,
        name=f"<@{row.user_id}>",
        schedule=row.schedule,
        timezone=zone,
        max_items=row.max_items,
        interests=Interests.from_dict(row.interests),
        origin=ORIGIN,
        contact={USER_FIELD: f"{row.team_id}:{row.user_id}"},
    )


def parse_when(text: str) -> tuple[str, str] | str:
    """`daily 08:00` / `weekly mon 08:00` (and an optional IANA zone after) → (cron, zone or "");
    a string with the fix when it is not one (mrkdwn: the member's text in it escaped)."""
    m = _WHEN.match(text.strip())
    fix = "write `/papers schedule daily 08:00` or `/papers schedule weekly mon 08:00`"
    if not m:
        return f"cannot read the schedule '{slack_escape(text.strip()[:60])}'; {fix}"
    hour, minute = int(m.group(3)), int(m.group(4))
    if hour > 23 or minute > 59:
        return f"{m.group(3)}:{m.group(4)} is not a time of day; {fix}"
    zone = m.group(5) or ""
    if zone and not zone_known(zone):
        return f"unknown time zone '{slack_escape(zone[:60])}'; give an IANA name such as Europe/Berlin, or none for your Slack time zone"
    day = (m.group(2) or "").lower()
    return f"{minute} {hour} * * {day or '*'}", zone


def schedule_words(schedule: str) -> str:
    """ "daily 08:00" / "weekly mon 07:30" for the schedules `parse_when` makes (and the web's
    "0 8 * * *"); "" for any other cron line."""
    m = _DAILY.match(schedule)
    if m:
        return f"daily {int(m.group(1)):02d}:00"
    m = _DAILY_MIN.match(schedule)
    if m:
        return f"daily {int(m.group(2)):02d}:{int(m.group(1)):02d}"
    m = _WEEKLY.match(schedule)
    if m:
        return f"weekly {m.group(3)} {int(m.group(2)):02d}:{int(m.group(1)):02d}"
    return ""


def describe_schedule(schedule: str, zone: str) -> str:
    """ "daily at 08:00 (Europe/Berlin)", "weekly on Mon at 07:30 (UTC)"; the cron otherwise."""
    words = schedule_words(schedule).split()
    if not words:
        return f"`{schedule}` ({zone})"
    if words[0] == "daily":
        return f"daily at {words[1]} ({zone})"
    return f"weekly on {words[1].capitalize()} at {words[2]} ({zone})"


def describe_interests(interests: Interests) -> list[str]:
    """One line per non-empty interest ("keywords: a, b"), as /papers show and App Home list them."""
    lines = []
    if interests.description:
        lines.append(f"in words: {interests.description}")
    for key in ("keywords", "exclude", "topics", "authors"):
        values = getattr(interests, key)
        if values:
            lines.append(f"{key}: {', '.join(values)}")
    lines.append(f"trending: {'on' if interests.trending else 'off'}")
    return lines


def when_text(at: datetime | None) -> str:
    """ "2026-12-01 08:00 UTC" or "none yet"."""
    return f"{at:%Y-%m-%d %H:%M} UTC" if at is not None else "none yet"


def key_of_id(sid: str) -> tuple[str, str] | None:
    """(team, user) of a member's subscriber id "slack-T…-U…", or None for another id."""
    head, _, rest = sid.partition("-")
    team, _, user = rest.partition("-")
    return (team, user) if head == "slack" and slack_id_ok(team) and slack_id_ok(user) else None
