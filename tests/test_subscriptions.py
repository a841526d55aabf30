"""Subscription files → Subscribers; every problem with file, key and fix; bad files skipped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.channels import channel_for
from bot.config import Settings
from bot.errors import BotError, ScheduleError
from bot.models import Interests
from bot.subscriptions import cron_trigger, load_subscriptions

GOOD = """
name = "Alice Example"
email = "alice@example.org"
schedule = "0 8 * * 1-5"
timezone = "Europe/Berlin"
max_items = 10
[interests]
description = "Post-training quantization of LLMs"
keywords = ["quantization", "low-bit"]
exclude = ["medical"]
topics = ["efficient-inference"]
authors = ["Song Han"]
"""


def test_a_good_file(tmp_path: Path) -> None:
    (tmp_path / "alice.toml").write_text(GOOD)
    subs, problems = load_subscriptions(tmp_path)
    assert problems == []
    (alice,) = subs
    assert (
        alice.id == "alice"
        and alice.name == "Alice Example"
        and channel_for(alice, Settings(smtp_url="smtp://127.0.0.1:2525")) == "email"
    )
    assert alice.interests == Interests(
        "Post-training quantization of LLMs",
        ("quantization", "low-bit"),
        ("medical",),
        ("efficient-inference",),
        ("Song Han",),
    )


@pytest.mark.parametrize(
    ("text", "key", "fix"),
    [
        (
            'email = "a@example.org"\ncolour = "red"\n[interests]\nkeywords = ["x"]',
            "colour",
            "unknown key; the keys are",
        ),
        (
            'email = "a@example.org"\nschedule = "every day"\n[interests]\nkeywords = ["x"]',
            "schedule",
            "is not a valid cron line",
        ),
        (
            'email = "a@example.org"\ntimezone = "Mars/Olympus"\n[interests]\nkeywords = ["x"]',
            "timezone",
            'use an IANA name such as "Europe/Berlin"',
        ),
        (
            'name = "Nobody"\n[interests]\nkeywords = ["x"]',
            "email",
            "no delivery address; give email",
        ),
        (
            'email = "a@example.org"\n[interests]\nkeywords = "quantization"',
            "interests.keywords",
            'is a string, not a list; write keywords = ["quantization"]',
        ),
        (
            'email = "not-an-address"\n[interests]\nkeywords = ["x"]',
            "email",
            "is not an email address",
        ),
        (
            'email = "a@example.org"\nmax_items = 0\n[interests]\nkeywords = ["x"]',
            "max_items",
            "is not a whole number from 1 to 200",
        ),
        (
            'email = "a@example.org"\n[interests]\nkeyword = ["x"]',
            "interests.keyword",
            "unknown key; the keys are authors, description, exclude, keywords, topics",
        ),
        ('email = "a@example.org"\n', "interests", "says nothing to match on"),
    ],
)
def test_each_problem_names_file_key_and_fix(tmp_path: Path, text: str, key: str, fix: str) -> None:
    (tmp_path / "bad.toml").write_text(text)
    subs, problems = load_subscriptions(tmp_path)
    assert subs == []
    assert [(p.path, p.key) for p in problems] == [(str(tmp_path / "bad.toml"), key)]
    assert fix in problems[0].message
    assert str(problems[0]).startswith(f"{tmp_path / 'bad.toml'}: {key}: ")


def test_all_problems_of_a_file_at_once_and_good_files_still_load(tmp_path: Path) -> None:
    (tmp_path / "alice.toml").write_text(GOOD)
    (tmp_path / "broken.toml").write_text(
        'schedule = "61 8 * * *"\ntimezone = "Nowhere"\n[interests]\nkeywords = [1, 2]\n'
    )
    (tmp_path / "syntax.toml").write_text('name = "unclosed\n')
    subs, problems = load_subscriptions(tmp_path)
    assert [s.id for s in subs] == ["alice"]
    assert [(Path(p.path).name, p.key) for p in problems] == [
        ("broken.toml", "email"),
        ("broken.toml", "timezone"),
        ("broken.toml", "schedule"),
        ("broken.toml", "interests.keywords"),
        ("syntax.toml", ""),
    ]


def test_unknown_topic_when_a_taxonomy_is_given(tmp_path: Path) -> None:
    (tmp_path / "alice.toml").write_text(GOOD)
    _, problems = load_subscriptions(tmp_path, known_topics={"diffusion"})
    assert [p.key for p in problems] == ["interests.topics"]
    assert "'digestbot topics' lists them" in problems[0].message


def test_missing_folder(tmp_path: Path) -> None:
    subs, problems = load_subscriptions(tmp_path / "nope")
    assert subs == [] and "no such folder" in str(problems[0])


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0", "sun"),
        ("7", "sun"),
        ("MON-FRI", "mon,tue,wed,thu,fri"),
        ("*/2", "sun,tue,thu,sat"),
        ("6,0", "sun,sat"),
        ("*", "*"),
    ],
)
def test_cron_days_count_from_sunday_as_in_crontab(field: str, days: str) -> None:
    trigger = cron_trigger(f"0 8 * * {field}", "UTC")
    assert str(trigger.fields[4]) == days


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("0 8 * *", "expected 5 fields, got 4"),
        ("0 8 * * 1-9", "bad day of week '9'"),
        ("0 8 * * 5-1", "bad range '5-1'"),
        ("0 8 * * */0", "bad step in '*/0'"),
        ("0 25 * * *", "25"),
    ],
)
def test_a_bad_cron_line_is_a_schedule_error(schedule: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(message)) as err:
        cron_trigger(schedule, "UTC")
    assert isinstance(err.value, BotError) and isinstance(err.value, ValueError)
