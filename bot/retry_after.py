"""The one Retry-After parser (RFC 9110 §10.2.3), for the sources and the channels alike."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any


def seconds_to_wait(value: str | None, default: float = 0.0, cap: float | None = None) -> float:
    """Seconds a Retry-After value asks for: delta-seconds ("120", "1.5") or an HTTP date.

    `default` when the value is absent or unreadable (negative, not a number, not a date); a date
    in the past is 0; the answer is never more than `cap` when one is given.
    """
    text = (value or "").strip()
    wait = _delta(text) if text else None
    if wait is None and text:
        wait = _until(text)
    if wait is None:
        wait = default
    return min(wait, cap) if cap is not None else wait


def header_seconds(
    headers: Mapping[str, Any] | None, default: float = 0.0, cap: float | None = None
) -> float:
    """`seconds_to_wait` for the Retry-After header of `headers`, whatever the case of its name.

    A header value may also be a list of values (as slack-sdk gives them): the first one counts.
    """
    value: Any = None
    for name, found in (headers or {}).items():
        if str(name).lower() == "retry-after":
            value = found
            break
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return seconds_to_wait(value if isinstance(value, str) else None, default, cap)


def _delta(text: str) -> float | None:
    try:
        wait = float(text)
    except ValueError:
        return None
    return wait if math.isfinite(wait) and wait >= 0 else None


def _until(text: str) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": a time in UTC with no zone named
        when = when.replace(tzinfo=UTC)
    try:
        return max(when.timestamp() - time.time(), 0.0)
    except (OverflowError, OSError, ValueError):
        return None
