"""Subscription files → Subscribers; every problem with file, key and fix; bad files skipped."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.channels import channel_for
from bot.config import Settings
from bot.errors import BotError, ScheduleError
from bot.models import Interests
from bot.subscriptions import cron_trigger, load_subscriptions, parse_subscriber

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
        (  # a folder of the tzdata: was "Is a directory" for the whole run
            'email = "a@example.org"\ntimezone = "Europe"\n[interests]\nkeywords = ["x"]',
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
            "unknown key; the keys are authors, description, exclude, keywords, min_upvotes, topics, trending",
        ),
        ('email = "a@example.org"\n', "interests", "says nothing to match on"),
        (  # the web form's cap: a name of 1,200 characters made a To: line of 1,224 bytes
            f'name = "{"a" * 101}"\nemail = "a@example.org"\n[interests]\nkeywords = ["x"]',
            "name",
            "is 101 characters long; write a name of at most 100",
        ),
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


def test_a_file_starting_with_a_bom_is_read(tmp_path: Path) -> None:
    """Editors on Windows write a UTF-8 BOM: it was "not valid TOML (Invalid statement)"."""
    (tmp_path / "alice.toml").write_bytes(b"\xef\xbb\xbf" + GOOD.lstrip().encode("utf-8"))
    (tmp_path / "bob.toml").write_text(GOOD, encoding="utf-16")  # its BOM, but not UTF-8: named
    subs, problems = load_subscriptions(tmp_path)
    assert [(s.id, s.name) for s in subs] == [("alice", "Alice Example")]
    assert [Path(p.path).name for p in problems] == ["bob.toml"]
    assert problems[0].message.endswith("; save it as UTF-8")  # not "fix the syntax"


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


# --- file names, cron's day rule, nicknames, schedules that never fire (15.10, 15.5, 17.13) ---


def test_a_file_name_with_a_final_newline_is_refused(tmp_path: Path) -> None:
    (tmp_path / "evil\n.toml").write_text(GOOD)
    (tmp_path / "alice.toml").write_text(GOOD)
    subs, problems = load_subscriptions(tmp_path)
    assert [s.id for s in subs] == ["alice"]
    assert [(p.key, p.message) for p in problems] == [
        (
            "",
            (
                "the file name 'evil\\n' is not a usable subscriber id; "
                "rename it with letters, digits, '.', '_' or '-'"
            ),
        )
    ]


def fires(schedule: str, start: datetime, count: int) -> list[str]:
    trigger = cron_trigger(schedule, "UTC")
    out, fire = [], trigger.get_next_fire_time(None, start)
    while fire is not None and len(out) < count:
        out.append(fire.strftime("%a %d %b %H:%M"))
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return out


def test_day_of_month_and_day_of_week_are_ored_as_in_cron() -> None:
    # 1 Dec 2026 is a Tuesday: the 1st, then every Monday, then the 1st of January.
    assert fires("0 8 1 * 1", datetime(2026, 12, 1, tzinfo=UTC), 6) == [
        "Tue 01 Dec 08:00",
        "Mon 07 Dec 08:00",
        "Mon 14 Dec 08:00",
        "Mon 21 Dec 08:00",
        "Mon 28 Dec 08:00",
        "Fri 01 Jan 08:00",
    ]
    # A field that starts with "*" restricts nothing of its own: the other one rules (cron: AND).
    assert fires("0 8 */10 * 1", datetime(2026, 12, 1, tzinfo=UTC), 2) == [
        "Mon 21 Dec 08:00",  # days 1, 11, 21, 31 that are Mondays
        "Mon 11 Jan 08:00",
    ]


@pytest.mark.parametrize(
    ("nickname", "expected"),
    [
        ("@hourly", ["Tue 01 Dec 13:00", "Tue 01 Dec 14:00"]),
        ("@daily", ["Wed 02 Dec 00:00", "Thu 03 Dec 00:00"]),
        ("@midnight", ["Wed 02 Dec 00:00", "Thu 03 Dec 00:00"]),
        ("@weekly", ["Sun 06 Dec 00:00", "Sun 13 Dec 00:00"]),
        ("@monthly", ["Fri 01 Jan 00:00", "Mon 01 Feb 00:00"]),
        ("@yearly", ["Fri 01 Jan 00:00", "Sat 01 Jan 00:00"]),
        ("@annually", ["Fri 01 Jan 00:00", "Sat 01 Jan 00:00"]),
    ],
)
def test_cron_nicknames(nickname: str, expected: list[str]) -> None:
    assert fires(nickname, datetime(2026, 12, 1, 12, 30, tzinfo=UTC), 2) == expected


def test_a_schedule_that_never_fires_is_named_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "feb.toml").write_text(GOOD.replace("0 8 * * 1-5", "0 8 31 2 *"))
    (tmp_path / "nick.toml").write_text(GOOD.replace("0 8 * * 1-5", "@fortnightly"))
    subs, problems = load_subscriptions(tmp_path)
    assert subs == []
    assert [(Path(p.path).name, p.key, p.message) for p in problems] == [
        (
            "feb.toml",
            "schedule",
            (
                "'0 8 31 2 *' never fires (no such date within 8 years); "
                'write a date that exists, e.g. "0 8 28 2 *"'
            ),
        ),
        (
            "nick.toml",
            "schedule",
            (
                "'@fortnightly' is not a valid cron line (unknown nickname '@fortnightly'; use one of "
                "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly); "
                'write five fields, e.g. "0 8 * * 1-5"'
            ),
        ),
    ]


def test_readmes_subscription_file_example_is_a_valid_subscriber() -> None:
    """The example under README "Subscription files" parses as written, every key known."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Subscription files", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    sub, problems = parse_subscriber("alice", tomllib.loads(example), "README.md")
    assert problems == [] and sub is not None
    assert sub.interests.trending and sub.interests.min_upvotes == 5
    assert sub.interests.topics == ("efficient-inference",)
