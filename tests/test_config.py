"""digestbot.toml and the environment → Settings, every problem named with file, key and fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_settings, mask_url, require_config_file, with_subscriptions
from bot.errors import ConfigError, ProblemsFound
from bot.sources import SOURCES

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "digestbot.toml"
    path.write_text(text)
    return str(path)


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ProblemsFound) as err:
        load_settings(write(tmp_path, text), env or {}, kinds=SOURCES)
    return [str(p) for p in err.value.problems]


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(None, {})
    assert s.database_url == "sqlite:///digestbot.db"
    assert s.sources == ()
    assert s.smtp_url == "" and s.slack_token == ""


def test_sources_and_paths(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            """
subscriptions_dir = "subs"
[[sources]]
name = "examples"
type = "file"
path = "papers.xml"
[[sources]]
name = "hf"
type = "hf-daily"
interval_minutes = 60
""",
        ),
        {},
    )
    assert [(x.name, x.type, dict(x.options), x.interval_minutes) for x in s.sources] == [
        ("examples", "file", {"path": "papers.xml"}, 30),
        ("hf", "hf-daily", {}, 60),
    ]
    assert s.resolve(s.subscriptions_dir) == tmp_path / "subs"


def test_environment_wins_and_secrets_come_from_it(tmp_path: Path) -> None:
    s = load_settings(
        write(tmp_path, 'database_url = "sqlite:///a.db"\n[smtp]\nurl = "smtp://a@b:587"\n'),
        {
            "DIGESTBOT_DATABASE_URL": "postgresql+psycopg://x@h/db",
            "DIGESTBOT_SMTP_PASSWORD": "s3cret",
            "SLACK_BOT_TOKEN": "xoxb-1",
        },
    )
    assert s.database_url == "postgresql+psycopg://x@h/db"
    assert s.smtp_url == "smtp://a@b:587"
    assert s.smtp_password == "s3cret" and s.slack_token == "xoxb-1"
    assert "s3cret" not in repr(s) and "xoxb-1" not in repr(s)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "digestbot.toml")
    found = problems(
        tmp_path,
        """
databse_url = "sqlite:///x.db"
fetch_interval_minutes = "often"
[smtp]
password = "plain-text"
[[sources]]
name = "a"
type = "atom"
[[sources]]
name = "b"
type = "rss"
[[sources]]
name = "c"
type = "file"
path = "x.xml"
colour = "red"
""",
    )
    assert found == [
        f"{path}: databse_url: unknown key; the keys are base_url, bounces, corpus_days, database_sqlite_synchronous, database_url, fetch_interval_minutes, from, lookback_days, outbox_dir, slack, smtp, sources, subscriptions_dir, templates_dir",
        f"{path}: fetch_interval_minutes: 'often' is not a whole number; write a whole number",
        f"{path}: smtp.password: unknown key (put the password in DIGESTBOT_SMTP_PASSWORD); the keys are url, rate",
        f"{path}: sources[a].type: 'atom' is not a source type; use one of arxiv, file, hf-daily, rss",
        f"{path}: sources[b].url: missing; a 'rss' source needs url = \"…\"",
        f"{path}: sources[c].colour: unknown key for type 'file'; the keys are interval_minutes, name, path, type",
    ]


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, "sources = [\n")
    assert found.startswith(f"{tmp_path / 'digestbot.toml'}: not valid TOML (")
    assert found.endswith("fix the syntax")


def test_missing_explicit_config_says_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(str(tmp_path / "nope.toml"), {})
    assert (
        str(err.value)
        == f"{tmp_path / 'nope.toml'}: no such file; give the path of a digestbot.toml, or run 'digestbot init' to write one"
    )


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://user:pw@host/db", "postgresql://user:***@host/db"),
        ("smtp://user@host:587", "smtp://user@host:587"),
        ("sqlite:///digestbot.db", "sqlite:///digestbot.db"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_without_the_source_kinds_sources_are_taken_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, '[[sources]]\nname = "a"\ntype = "atom"\ncolour = "red"\n')
    (spec,) = load_settings(path, {}).sources
    assert (spec.type, dict(spec.options)) == ("atom", {"colour": "red"})
    with pytest.raises(ProblemsFound) as err:
        load_settings(write(tmp_path, '[[sources]]\nname = "a"\n'), {})
    assert [str(p) for p in err.value.problems] == [
        f'{path}: sources[a].type: None is not a source type; write type = "rss" or another'
    ]


def test_templates_dir_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "conf" / "digestbot.toml"
    (tmp_path / "conf" / "mine").mkdir()
    (tmp_path / "abs").mkdir()
    path.write_text('templates_dir = "mine"\n')
    assert load_settings(str(path), {}).templates_dir == tmp_path / "conf" / "mine"
    path.write_text(f'templates_dir = "{tmp_path / "abs"}"\n')
    assert load_settings(str(path), {}).templates_dir == tmp_path / "abs"
    path.write_text("")
    assert load_settings(str(path), {}).templates_dir is None


def test_a_config_file_can_be_required_and_the_subscriptions_folder_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    defaults = load_settings(None, {})
    with pytest.raises(ConfigError) as err:
        require_config_file(defaults)
    assert str(err.value).startswith(
        f"digestbot.toml: not found in {tmp_path}, and neither --config"
    )
    require_config_file(load_settings(write(tmp_path, ""), {}))  # a file was found: fine
    assert with_subscriptions(defaults, None) is defaults
    assert with_subscriptions(defaults, "subs").subscriptions_dir == tmp_path / "subs"


def test_importing_config_and_store_loads_no_source_and_no_http(tmp_path: Path) -> None:
    """`bot.config` and `bot.store` sit below the sources: importing them loads none of it."""
    code = (
        "import sys, bot.config, bot.store, bot.models, bot.roster; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('feedparser', 'requests') "
        "or m.startswith('bot.sources')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "[]", out.stdout


# --- paths follow the config file; values checked beyond their type (issue 15.1, 15.5, 15.7) ---


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///digestbot.db", "sqlite:///{dir}/digestbot.db"),
        ("sqlite:///data/a.db?timeout=5", "sqlite:///{dir}/data/a.db?timeout=5"),
        ("sqlite+pysqlite:///a.db", "sqlite+pysqlite:///{dir}/a.db"),
        ("sqlite:////srv/abs.db", "sqlite:////srv/abs.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_a_relative_sqlite_file_lies_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    folder = tmp_path / "lab"
    folder.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_settings(write(folder, f'database_url = "{url}"\n'), {})
    assert s.database_url == expected.format(dir=folder)
    default = load_settings(write(folder, ""), {})  # the default URL too
    assert default.database_url == f"sqlite:///{folder}/digestbot.db"


def test_the_users_topics_file_is_the_one_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "topics.toml").write_text("")  # in the working folder: not the config's
    folder = tmp_path / "lab"
    folder.mkdir()
    config = write(folder, "")
    assert load_settings(config, {}).topics_file is None
    (folder / "topics.toml").write_text("")
    assert load_settings(config, {}).topics_file == folder / "topics.toml"


def test_values_are_checked_beyond_their_type(tmp_path: Path) -> None:
    path = str(tmp_path / "digestbot.toml")
    found = problems(
        tmp_path,
        """
from = "nobody"
base_url = "not a url"
[smtp]
url = "http://mail.example.org"
rate = -5
[[sources]]
name = "papers"
type = "rss"
url = "https://example.org/feed"
timeout = "30"
""",
    )
    assert found == [
        (
            f"{path}: sources[papers]: timeout = '30' is not a number > 0; "
            "write e.g. timeout = 30 in its [[sources]] table"
        ),
        (
            f"{path}: smtp.url: 'http://mail.example.org' is not an SMTP URL; write "
            "smtp://user@host:587 (STARTTLS), smtps://host:465 (TLS) or smtp://127.0.0.1:2525 (plain)"
        ),
        f"{path}: from: 'nobody' is not an address; write e.g. 'Lab digest <digest@example.org>'",
        (
            f"{path}: base_url: 'not a url' is not an http(s) URL; write where `digestbot serve` "
            "is reached, e.g. https://digest.example.org"
        ),
        (
            f"{path}: smtp.rate: -5 is negative; write messages per second, e.g. rate = 10 "
            "(0: no limit)"
        ),
    ]


def test_numbers_that_would_fail_every_fetch_or_send_are_named(tmp_path: Path) -> None:
    """0, nan and inf passed the check: a fetch then failed with "unexpected ValueError"."""
    path = str(tmp_path / "digestbot.toml")
    found = problems(
        tmp_path,
        """
[smtp]
rate = nan
[[sources]]
name = "blog"
type = "rss"
url = "https://example.org/feed"
timeout = 0
[[sources]]
name = "big"
type = "rss"
url = "https://example.org/feed"
max_bytes = 0
timeout = "30"
[[sources]]
name = "hf"
type = "hf-daily"
limit = 0
[[sources]]
name = "forever"
type = "arxiv"
timeout = inf
""",
    )
    assert found == [
        (
            f"{path}: sources[blog]: timeout = 0 is not a number > 0; "
            "write e.g. timeout = 30 in its [[sources]] table"
        ),
        (  # every wrong option of a table at once, not one per run of check
            f"{path}: sources[big]: timeout = '30' is not a number > 0; "
            "write e.g. timeout = 30 in its [[sources]] table; also "
            "max_bytes = 0 is not a number > 0; "
            "write e.g. max_bytes = 10000000 in its [[sources]] table"
        ),
        (
            f"{path}: sources[hf]: limit = 0 is not a number > 0; "
            "write e.g. limit = 100 in its [[sources]] table"
        ),
        (
            f"{path}: sources[forever]: timeout = inf is not a number > 0; "
            "write e.g. timeout = 30 in its [[sources]] table"
        ),
        (
            f"{path}: smtp.rate: nan is not a number of messages per second; write e.g. rate = 10 "
            "(0: no limit)"
        ),
    ]
    assert problems(tmp_path, "[smtp]\nrate = inf\n") == [
        (
            f"{path}: smtp.rate: inf is not a number of messages per second; write e.g. rate = 10 "
            "(0: no limit)"
        )
    ]


def test_a_templates_dir_that_is_not_a_folder_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in templates_dir was ignored: the bundled templates were used, check said nothing."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "my-templates").mkdir()
    (tmp_path / "my-templatse").mkdir()  # beside the working folder, not the config: not it
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "conf" / "digestbot.toml"
    path.write_text('templates_dir = "my-templatse"\n')
    with pytest.raises(ProblemsFound) as err:
        load_settings(str(path), {})
    assert [str(p) for p in err.value.problems] == [
        (
            f"{path}: templates_dir: {tmp_path / 'conf' / 'my-templatse'} is not a folder; correct "
            "the path, create the folder (with your copies of templates/'s files), or remove the "
            "key to use the bundled templates"
        )
    ]
    (tmp_path / "conf" / "my-templatse").write_text("a file, not a folder")
    with pytest.raises(ProblemsFound):
        load_settings(str(path), {})


def test_a_config_file_may_start_with_a_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffcorpus_days = 5\n")
    assert load_settings(path, {}).corpus_days == 5


def test_a_config_or_topics_file_that_is_not_utf8_is_a_problem_not_a_traceback(
    tmp_path: Path,
) -> None:
    path = Path(write(tmp_path, "corpus_days = 5\n"))
    path.write_bytes(path.read_bytes() + b'name = "caf\xe9"\n')  # Latin-1
    with pytest.raises(ProblemsFound) as found:
        load_settings(str(path), {})
    (problem,) = found.value.problems
    assert problem.path == str(path) and problem.message.startswith("not UTF-8 (")
    assert problem.message.endswith("; save it as UTF-8")
    from bot.match.topics import load_topics

    topics = tmp_path / "topics.toml"
    topics.write_bytes(b'[[topic]]\nslug = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"topics.toml: not UTF-8 .*; save it as UTF-8"):
        load_topics(topics)


def test_values_from_the_environment_are_named_by_their_variable(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "",
        {"DIGESTBOT_SMTP_URL": "mail.example.org:587", "DIGESTBOT_FROM": "nobody"},
    )
    assert found == [
        (
            "environment: DIGESTBOT_SMTP_URL: 'mail.example.org:587' is not an SMTP URL; write "
            "smtp://user@host:587 (STARTTLS), smtps://host:465 (TLS) or smtp://127.0.0.1:2525 (plain)"
        ),
        (
            "environment: DIGESTBOT_FROM: 'nobody' is not an address; "
            "write e.g. 'Lab digest <digest@example.org>'"
        ),
    ]


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ({"DIGESTBOT_SMTP_URL": "smtp://127.0.0.1:2525"}, ""),  # this machine: a trial
        ({"DIGESTBOT_SMTP_URL": "smtp://u@mail.example.org"}, "DIGESTBOT_SECRET_KEY: unset"),
        (
            {"DIGESTBOT_SMTP_URL": "smtp://u@mail.example.org", "DIGESTBOT_SECRET_KEY": "k"},
            "base_url: 'http://localhost:8000' points at this machine",
        ),
        (
            {
                "DIGESTBOT_SMTP_URL": "smtp://u@mail.example.org",
                "DIGESTBOT_SECRET_KEY": "k",
                "DIGESTBOT_BASE_URL": "http://127.0.0.1:8000",
            },
            "base_url: 'http://127.0.0.1:8000' points at this machine",
        ),
        (
            {
                "DIGESTBOT_SMTP_URL": "smtp://u@mail.example.org",
                "DIGESTBOT_SECRET_KEY": "k",
                "DIGESTBOT_BASE_URL": "https://digest.example.org",
            },
            "",
        ),
        (
            {
                "DIGESTBOT_SMTP_URL": "smtp://mailpit:25",
                "DIGESTBOT_SECRET_KEY": "k",
                "DIGESTBOT_LOCAL_LINKS": "1",
            },
            "",
        ),
    ],
)
def test_mail_to_another_machine_needs_public_signed_links(
    tmp_path: Path, env: dict[str, str], refused: str
) -> None:
    problem = load_settings(write(tmp_path, ""), env).sending_problem()
    if not refused:
        assert problem is None
        return
    assert problem is not None and str(problem).startswith(refused)
    assert "; set " in str(problem) and "\n" not in str(problem)  # one line with the fix
