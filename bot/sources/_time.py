"""Aware UTC datetimes from what sources send, or None when a date cannot be one."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


def utc(when: datetime) -> datetime | None:
    """`when` in UTC (a naive one is taken as UTC); None when UTC cannot hold it.

    "9999-12-31T23:00:00-05:00" is a valid date that lies past `datetime.max` in UTC: it would
    raise OverflowError wherever it is compared or stored, and fail the whole batch.
    """
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:
        return None


def parse_time(text: Any) -> datetime | None:
    """An RFC 822 date (`Wed, 02 Oct 2002 13:00:00`, zone or not) or an ISO 8601 one, in UTC.

    For the dates feedparser leaves unread: a zone-less RFC 822 date is read as UTC.
    None for anything else, so the entry is dated when first seen.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    try:
        return utc(parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    try:
        return utc(datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        return None
