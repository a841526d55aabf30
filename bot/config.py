"""`digestbot.toml` plus the environment → `Settings`; every key checked, file and key named."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config_sources import SourceKind, SourceSpec, check_type, parse_sources
from .config_values import (
    base_url_problem,
    mask_url,
    rate_problem,
    sender_problem,
    sending_problem,
    smtp_url_problem,
)
from .errors import ConfigError, Problem, ProblemsFound

__all__ = [
    "DEFAULT_CONFIG",
    "ConfigProblems",
    "Settings",
    "SourceSpec",
    "load_settings",
    "mask_url",
    "parse_settings",
    "require_config_file",
    "with_subscriptions",
]

DEFAULT_CONFIG = "digestbot.toml"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything digestbot is configured with; secrets come only from the environment."""

    config_path: Path | None = None
    base_dir: Path = Path(".")  # relative paths in the file are relative to the file's folder
    database_url: str = "sqlite:///digestbot.db"  # DIGESTBOT_DATABASE_URL
    # SQLite only: NORMAL (a commit survives a killed process, the last ones may not survive a
    # power loss) or FULL (fsync at every commit: survives both, ~10× slower to record)
    database_sqlite_synchronous: str = "NORMAL"
    subscriptions_dir: Path = Path("subscriptions")
    outbox_dir: Path = Path("outbox")
    # `outbox_dir` written in the config file: the outbox serves subscribers whose channel is not
    # configured (DIGESTBOT_OUTBOX only moves the folder); see `bot.channels.outbox.chosen`
    outbox_chosen: bool = False
    templates_dir: Path | None = None  # a folder whose templates override the bundled ones
    # `match --topics PATH`: the user's topics, instead of a topics.toml beside the config
    topics_path: Path | None = None
    sources: tuple[SourceSpec, ...] = ()
    smtp_url: str = ""  # DIGESTBOT_SMTP_URL; empty: email goes to the outbox
    smtp_password: str = field(default="", repr=False)  # DIGESTBOT_SMTP_PASSWORD (secret)
    smtp_rate: float = 10.0  # messages per second at most, across the whole run
    from_addr: str = "digestbot <digestbot@localhost>"  # DIGESTBOT_FROM
    slack_token: str = field(default="", repr=False)  # SLACK_BOT_TOKEN (secret)
    slack_api_url: str = "https://slack.com/api/"  # DIGESTBOT_SLACK_API_URL
    base_url: str = "http://localhost:8000"  # DIGESTBOT_BASE_URL: feedback/unsubscribe links
    secret_key: str = field(
        default="", repr=False
    )  # DIGESTBOT_SECRET_KEY (secret; see secret_keys)
    # DIGESTBOT_TRUSTED_PROXIES: addresses/networks whose X-Forwarded-For the web front believes
    # (comma-separated, uvicorn's --forwarded-allow-ips; "*" any); none by default
    trusted_proxies: str = ""
    fetch_interval_minutes: int = 30  # default for sources without their own interval
    corpus_days: int = 30  # how many days of stored entries the matcher learns its vocabulary from
    lookback_days: int = 7  # entries older than this are not offered to a first digest
    broker_url: str = field(
        default="", repr=False
    )  # DIGESTBOT_BROKER_URL: Celery broker (redis:// or amqp://)
    ratelimit_url: str = field(
        default="", repr=False
    )  # DIGESTBOT_RATELIMIT_URL: Redis for the pool's rate limits
    queue: str = "digestbot"  # DIGESTBOT_QUEUE: the Celery queue (and rate-limit key prefix) of this deployment
    # DIGESTBOT_LOCAL_LINKS=1: links to this machine are fine in mail to another SMTP server (a
    # trial with a mail catcher, deploy/compose.yaml); see `config_values.sending_problem`.
    local_links_ok: bool = False
    # [bounces] (bot/bounces): the VERP return path, the bounce mailbox and the suspension policy
    bounce_address: str = ""  # DIGESTBOT_BOUNCE_ADDRESS, e.g. bounces@example.org; empty: no VERP
    bounce_imap_url: str = field(default="", repr=False)  # DIGESTBOT_BOUNCE_IMAP_URL
    bounce_imap_password: str = field(default="", repr=False)  # DIGESTBOT_BOUNCE_IMAP_PASSWORD
    bounce_processed_folder: str = "digestbot-processed"  # where handled bounces are moved
    bounce_hard_limit: int = 3  # this many hard bounces …
    bounce_window_days: int = 30  # … within this many days suspend a subscriber
    bounce_check_minutes: int = 15  # how often `digestbot run` reads the bounce mailbox
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """DIGESTBOT_SECRET_KEY's keys, newest first (commas or whitespace between keys)."""
        return tuple(k for k in self.secret_key.replace(",", " ").split() if k)

    def resolve(self, path: Path) -> Path:
        """A configured path, relative to the config file's folder."""
        return path if path.is_absolute() else self.base_dir / path

    @property
    def https_links(self) -> bool:
        """Whether the links digestbot makes (`base_url`) are https: one-click unsubscribing
        (RFC 8058) and secure cookies need it."""
        return urlsplit(self.base_url.strip()).scheme.lower() == "https"

    @property
    def topics_file(self) -> Path | None:
        """The user's own topics: `topics_path` if given, else `topics.toml` next to the config
        file when there is one."""
        if self.topics_path is not None:
            return self.topics_path
        path = self.base_dir / "topics.toml"
        return path if path.is_file() else None

    def sending_problem(self) -> ConfigError | None:
        """Why email must not go out to the configured SMTP server, with the fix; None: it may."""
        key, problem = sending_problem(
            self.smtp_url, self.base_url, self.secret_key, self.local_links_ok
        )
        return ConfigError(problem, key=key) if problem else None


_TOP_KEYS = {
    "database_url",
    "database_sqlite_synchronous",
    "subscriptions_dir",
    "outbox_dir",
    "templates_dir",
    "sources",
    "smtp",
    "slack",
    "from",
    "base_url",
    "fetch_interval_minutes",
    "corpus_days",
    "lookback_days",
    "bounces",
}
_SMTP_KEYS = {"url", "rate"}
_SLACK_KEYS = {"api_url"}
_ENV = {
    "DIGESTBOT_DATABASE_URL": "database_url",
    "DIGESTBOT_SMTP_URL": "smtp_url",
    "DIGESTBOT_SMTP_PASSWORD": "smtp_password",
    "DIGESTBOT_FROM": "from_addr",
    "SLACK_BOT_TOKEN": "slack_token",
    "DIGESTBOT_SLACK_API_URL": "slack_api_url",
    "DIGESTBOT_BASE_URL": "base_url",
    "DIGESTBOT_SECRET_KEY": "secret_key",
    "DIGESTBOT_TRUSTED_PROXIES": "trusted_proxies",
    "DIGESTBOT_BROKER_URL": "broker_url",
    "DIGESTBOT_RATELIMIT_URL": "ratelimit_url",
    "DIGESTBOT_QUEUE": "queue",
    "DIGESTBOT_BOUNCE_ADDRESS": "bounce_address",
    "DIGESTBOT_BOUNCE_IMAP_URL": "bounce_imap_url",
    "DIGESTBOT_BOUNCE_IMAP_PASSWORD": "bounce_imap_password",
}


def find_config(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read: --config, else DIGESTBOT_CONFIG, else ./digestbot.toml if present."""
    name = explicit or environ.get("DIGESTBOT_CONFIG")
    if name:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(
                "no such file; give the path of a digestbot.toml, or run 'digestbot init' to write one",
                path=str(path),
            )
        return path
    default = Path(DEFAULT_CONFIG)
    return default if default.is_file() else None


class ConfigProblems(ProblemsFound):
    """The config file's problems, with the settings as far as they could be read (`settings`):
    its folder, and the keys that were fine, so `check` still reads the subscriptions beside it."""

    def __init__(self, problems: list[Problem], settings: Settings) -> None:
        super().__init__(problems)
        self.settings = settings


def load_settings(
    explicit: str | None = None,
    environ: Mapping[str, str] | None = None,
    kinds: Mapping[str, SourceKind] | None = None,
) -> Settings:
    """Read the config file and the environment; raise `ConfigProblems` naming every bad key.

    `kinds` (`bot.sources.SOURCES`) checks each source's type and options; without it they are
    taken as written. `templates_dir` comes back resolved against the config file's folder.
    """
    env = dict(os.environ if environ is None else environ)
    path = find_config(explicit, env)
    raw: dict[str, Any] = {}
    problems: list[Problem] = []
    if path is not None:
        try:
            # utf-8-sig: a leading BOM (Windows editors write one) is not part of the TOML
            raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except tomllib.TOMLDecodeError as e:
            problems.append(Problem(str(path), "", f"not valid TOML ({e}); fix the syntax"))
        except UnicodeDecodeError as e:
            problems.append(
                Problem(
                    str(path), "", f"not UTF-8 ({e.reason} at byte {e.start}); save it as UTF-8"
                )
            )
        except OSError as e:
            raise ConfigError(
                f"cannot read it ({e.strerror}); check its permissions", path=str(path)
            ) from e
    settings, found = parse_settings(raw, str(path or "(defaults)"), env, kinds)
    problems += found
    if path is not None:
        settings = replace(settings, config_path=path, base_dir=path.parent)
        settings = replace(settings, database_url=_sqlite_beside(settings, settings.database_url))
    if settings.templates_dir is not None:
        # Relative to the config file like every other path (render uses it as given).
        templates = settings.resolve(settings.templates_dir)
        settings = replace(settings, templates_dir=templates)
        if not templates.is_dir():  # else a typo silently means the bundled templates
            problems.append(
                Problem(
                    str(path or "(defaults)"),
                    "templates_dir",
                    f"{templates} is not a folder; correct the path, create the "
                    "folder (with your copies of templates/'s files), or remove the key to use "
                    "the bundled templates",
                )
            )
    if problems:
        raise ConfigProblems(problems, settings)
    return settings


_NO_CONFIG = (
    "not found in {cwd}, and neither --config nor DIGESTBOT_CONFIG is set; "
    "run 'digestbot init' to write one here, or pass --config PATH"
)


def _sqlite_beside(settings: Settings, url: str) -> str:
    """A SQLite URL with a relative file made relative to the config file's folder (any other
    URL as it is): `sqlite:///digestbot.db` is the ledger next to digestbot.toml, from any folder."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+")[0] != "sqlite":
        return url
    file, q, query = rest.partition("?")
    if not file or file.startswith(("/", "file:")) or file == ":memory:":
        return url
    return f"{scheme}:///{settings.resolve(Path(file))}{q}{query}"


def require_config_file(settings: Settings) -> None:
    """Refuse settings made of defaults alone (no config file found), saying how to make one."""
    if settings.config_path is None:
        raise ConfigError(_NO_CONFIG.format(cwd=Path.cwd()), path=DEFAULT_CONFIG)


def with_subscriptions(settings: Settings, folder: str | None) -> Settings:
    """The settings with another subscriptions folder (`--subscriptions`), when one is given."""
    return replace(settings, subscriptions_dir=Path(folder).resolve()) if folder else settings


def parse_settings(
    raw: Mapping[str, Any],
    where: str,
    env: Mapping[str, str],
    kinds: Mapping[str, SourceKind] | None = None,
) -> tuple[Settings, list[Problem]]:
    """Settings from a decoded config table and the environment, with every problem found.

    `kinds`: the source kinds to check `[[sources]]` against (see `load_settings`).

    Long on purpose: one key after another, in the order of README's table, each a few lines
    that read the file, let the environment win and name a problem; the checks themselves are in
    `config_values`.
    """
    problems: list[Problem] = []
    values: dict[str, Any] = {"environ": env}
    for key in sorted(set(raw) - _TOP_KEYS):
        problems.append(
            Problem(where, key, f"unknown key; the keys are {', '.join(sorted(_TOP_KEYS))}")
        )
    for key in ("database_url", "base_url"):
        if key in raw and check_type(problems, where, key, raw[key], str, "a string"):
            values[key] = raw[key]
    sync = raw.get("database_sqlite_synchronous")
    if sync is not None and check_type(
        problems, where, "database_sqlite_synchronous", sync, str, '"NORMAL" or "FULL"'
    ):
        if sync.upper() in ("NORMAL", "FULL"):
            values["database_sqlite_synchronous"] = sync.upper()
        else:
            problems.append(
                Problem(
                    where,
                    "database_sqlite_synchronous",
                    f'{sync!r} is not a mode; write "NORMAL" '
                    '(fast; a power loss may undo the last records) or "FULL" (an fsync per record)',
                )
            )
    for key in ("subscriptions_dir", "outbox_dir", "templates_dir"):
        if key in raw and check_type(problems, where, key, raw[key], str, "a path string"):
            values[key] = Path(raw[key])
    values["outbox_chosen"] = "outbox_dir" in values
    for key in ("fetch_interval_minutes", "corpus_days", "lookback_days"):
        if key in raw and check_type(problems, where, key, raw[key], int, "a whole number"):
            if raw[key] < 1:
                problems.append(Problem(where, key, f"{raw[key]} is too small; give 1 or more"))
            else:
                values[key] = raw[key]
    if "from" in raw and check_type(problems, where, "from", raw["from"], str, "an address string"):
        values["from_addr"] = raw["from"]
    smtp = raw.get("smtp", {})
    if check_type(problems, where, "smtp", smtp, dict, "a table [smtp]"):
        for key in sorted(set(smtp) - _SMTP_KEYS):
            hint = " (put the password in DIGESTBOT_SMTP_PASSWORD)" if key == "password" else ""
            problems.append(
                Problem(where, f"smtp.{key}", f"unknown key{hint}; the keys are url, rate")
            )
        if "url" in smtp and check_type(problems, where, "smtp.url", smtp["url"], str, "a string"):
            values["smtp_url"] = smtp["url"]
        if "rate" in smtp and check_type(
            problems, where, "smtp.rate", smtp["rate"], (int, float), "a number"
        ):
            values["smtp_rate"] = float(smtp["rate"])
    slack = raw.get("slack", {})
    if check_type(problems, where, "slack", slack, dict, "a table [slack]"):
        for key in sorted(set(slack) - _SLACK_KEYS):
            hint = " (put the token in SLACK_BOT_TOKEN)" if "token" in key else ""
            problems.append(
                Problem(where, f"slack.{key}", f"unknown key{hint}; the key is api_url")
            )
        if "api_url" in slack and check_type(
            problems, where, "slack.api_url", slack["api_url"], str, "a string"
        ):
            values["slack_api_url"] = slack["api_url"]
    _parse_bounces(raw.get("bounces", {}), where, values, problems)
    values["sources"] = parse_sources(
        raw.get("sources", []), where, values.get("fetch_interval_minutes", 30), kinds, problems
    )
    from_env = {attr for var, attr in _ENV.items() if env.get(var)}
    for var, attr in _ENV.items():
        if env.get(var):
            values[attr] = env[var]
    values["local_links_ok"] = env.get("DIGESTBOT_LOCAL_LINKS", "") == "1"
    _check_values(values, where, from_env, problems)
    if env.get("DIGESTBOT_SUBSCRIPTIONS"):
        values["subscriptions_dir"] = Path(env["DIGESTBOT_SUBSCRIPTIONS"])
    if env.get("DIGESTBOT_OUTBOX"):
        values["outbox_dir"] = Path(env["DIGESTBOT_OUTBOX"])
    return Settings(**values), problems


# Values checked beyond their type: Settings attribute → (key in the file, variable, check).
_VALUE_CHECKS = (
    ("smtp_url", "smtp.url", "DIGESTBOT_SMTP_URL", smtp_url_problem),
    ("from_addr", "from", "DIGESTBOT_FROM", sender_problem),
    ("base_url", "base_url", "DIGESTBOT_BASE_URL", base_url_problem),
)


def _check_values(
    values: dict[str, Any], where: str, from_env: set[str], problems: list[Problem]
) -> None:
    """The SMTP URL, sender, base URL and rate as given, each problem named where it was set."""
    for attr, key, var, check in _VALUE_CHECKS:
        if attr not in values:
            continue
        problem = check(values[attr])
        if problem:
            at = Problem("environment", var, problem) if attr in from_env else None
            problems.append(at or Problem(where, key, problem))
    if "smtp_rate" in values and (problem := rate_problem(values["smtp_rate"])):
        problems.append(Problem(where, "smtp.rate", problem))


_BOUNCE_KEYS = {
    "address": ("bounce_address", str),
    "imap_url": ("bounce_imap_url", str),
    "processed_folder": ("bounce_processed_folder", str),
    "hard_limit": ("bounce_hard_limit", int),
    "window_days": ("bounce_window_days", int),
    "check_minutes": ("bounce_check_minutes", int),
}


def _parse_bounces(table: Any, where: str, values: dict[str, Any], problems: list[Problem]) -> None:
    """The [bounces] table (README "Bounces and complaints") into `values`."""
    if not check_type(problems, where, "bounces", table, dict, "a table [bounces]"):
        return
    for key in sorted(set(table) - set(_BOUNCE_KEYS)):
        hint = " (put it in DIGESTBOT_BOUNCE_IMAP_PASSWORD)" if key == "password" else ""
        problems.append(
            Problem(
                where,
                f"bounces.{key}",
                f"unknown key{hint}; the keys are " + ", ".join(sorted(_BOUNCE_KEYS)),
            )
        )
    for key, (attr, kind) in _BOUNCE_KEYS.items():
        value = table.get(key)
        what = "a string" if kind is str else "a whole number"
        if value is None or not check_type(problems, where, f"bounces.{key}", value, kind, what):
            continue
        if kind is int and value < 1:
            problems.append(
                Problem(where, f"bounces.{key}", f"{value} is too small; give 1 or more")
            )
        else:
            values[attr] = value
