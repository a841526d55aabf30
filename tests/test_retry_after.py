"""The one Retry-After parser: delta-seconds, HTTP dates, header lookup, caps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from bot.retry_after import header_seconds, seconds_to_wait

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),  # IMF-fixdate
        ("Sunday, 01-Mar-26 12:01:00 GMT", 60.0),  # obsolete RFC 850 form
        ("Sun, 01 Mar 2026 12:02:00 -0000", 120.0),  # no zone named: UTC
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),  # in the past: go now
        (None, 9.0),
        ("", 9.0),
        ("soon", 9.0),
        ("-5", 9.0),
        ("nan", 9.0),
        ("inf", 9.0),
        ("Sun, 99 Foo 2026 25:61:00 GMT", 9.0),
    ],
)
def test_seconds_to_wait_reads_both_forms_and_falls_back_to_the_default(
    value: str | None, expected: float
) -> None:
    with time_machine.travel(NOW, tick=False):
        assert seconds_to_wait(value, 9.0) == pytest.approx(expected)


def test_the_cap_bounds_both_forms() -> None:
    with time_machine.travel(NOW, tick=False):
        assert seconds_to_wait("99999", 1.0, cap=300) == 300.0
        assert seconds_to_wait("Mon, 01 Mar 2027 12:00:00 GMT", 1.0, cap=300) == 300.0
        assert seconds_to_wait("99999", 1.0) == 99999.0


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "4"},
        {"retry-after": "4"},  # Slack's Web API writes it lower-case
        {"RETRY-AFTER": ["4", "9"]},  # slack-sdk gives a list of values
        {"Retry-After": 4},
    ],
)
def test_header_seconds_finds_the_header_in_any_case(headers: dict[str, object]) -> None:
    assert header_seconds(headers) == 4.0


def test_header_seconds_without_the_header_is_the_default() -> None:
    assert header_seconds({}) == 0.0
    assert header_seconds(None, 3.0) == 3.0
    assert header_seconds({"Retry-After": []}, 3.0) == 3.0
    assert header_seconds({"Content-Type": "text/plain"}, 3.0) == 3.0
