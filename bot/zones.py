"""IANA time zones: whether this host's tzdata knows one, the one check for subscription files,
the web forms, Slack members and the roster."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger(__name__)


def zone_known(zone: str) -> bool:
    """Whether `ZoneInfo(zone)` works here. Not only unknown names fail: "Europe" is a folder of
    the tzdata (IsADirectoryError), a 300-character name is too long for the file system
    (OSError), "../x" is refused (ValueError); each is "not a time zone", never a crash."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def zone_or_utc(zone: str, who: str, fix: str) -> str:
    """`zone` if this host knows it, else "UTC" with a warning naming `who` and the `fix`: a zone
    stored by another host (a web front with newer tzdata) never stops planning for everyone."""
    if zone_known(zone):
        return zone
    log.warning(
        "%s: unknown time zone %r (not in this host's tzdata); using UTC (update the tzdata "
        "package, or %s)",
        who,
        zone[:60],
        fix,
    )
    return "UTC"
