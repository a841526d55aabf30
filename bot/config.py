"""`digestbot.toml` plus the environment → `Settings`; every key checked, file and key named."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from .errors import ConfigError, Problem, ProblemsFound

DEFAULT_CONFIG = "digestbot.toml"


class SourceKind(Protocol):
    """What config checking needs of a source kind (a `bot.sources.Source` class): its options."""

    @property
    def options(self) -> Mapping[str, Any]:
        """Option name → default; a default of None marks a required option."""


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One `[[sources]]` table: a name, a kind and that kind's options."""

    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    interval_minutes: int = 30  # how often `digestbot run` fetches it


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
    templates_dir: Path | None = None  # a folder whose templates override the bundled ones
    sources: tuple[SourceSpec, ...] = ()
    smtp_url: str = ""  # DIGESTBOT_SMTP_URL; empty: email goes to the outbox
    smtp_password: str = field(default="", repr=False)  # DIGESTBOT_SMTP_PASSWORD (secret)
    smtp_rate: float = 10.0  # messages per second at most, across the whole run
    from_addr: str = "digestbot <digestbot@localhost>"  # DIGESTBOT_FROM
    slack_token: str = field(default="", repr=False)  # SLACK_BOT_TOKEN (secret)
    slack_api_url: str = "https://slack.com/api/"  # DIGESTBOT_SLACK_API_URL
    base_url: str = "http://localhost:8000"  # DIGESTBOT_BASE_URL: feedback/unsubscribe links
    secret_key: str = field(default="", repr=False)  # DIGESTBOT_SECRET_KEY (secret)
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
    # [bounces] (bot/bounces): the VERP return path, the bounce mailbox and the suspension policy
    bounce_address: str = ""  # DIGESTBOT_BOUNCE_ADDRESS, e.g. bounces@example.org; empty: no VERP
    bounce_imap_url: str = field(default="", repr=False)  # DIGESTBOT_BOUNCE_IMAP_URL
    bounce_imap_password: str = field(default="", repr=False)  # DIGESTBOT_BOUNCE_IMAP_PASSWORD
    bounce_processed_folder: str = "digestbot-processed"  # where handled bounces are moved
    bounce_hard_limit: int = 3  # this many hard bounces …
    bounce_window_days: int = 30  # … within this many days suspend a subscriber
    bounce_check_minutes: int = 15  # how often `digestbot run` reads the bounce mailbox
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def resolve(self, path: Path) -> Path:
        """A configured path, relative to the config file's folder."""
        return path if path.is_absolute() else self.base_dir / path


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
_SOURCE_KEYS = {"name", "type", "interval_minutes"}
_ENV = {
    "DIGESTBOT_DATABASE_URL": "database_url",
    "DIGESTBOT_SMTP_URL": "smtp_url",
    "DIGESTBOT_SMTP_PASSWORD": "smtp_password",
    "DIGESTBOT_FROM": "from_addr",
    "SLACK_BOT_TOKEN": "slack_token",
    "DIGESTBOT_SLACK_API_URL": "slack_api_url",
    "DIGESTBOT_BASE_URL": "base_url",
    "DIGESTBOT_SECRET_KEY": "secret_key",
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


def load_settings(
    explicit: str | None = None,
    environ: Mapping[str, str] | None = None,
    kinds: Mapping[str, SourceKind] | None = None,
) -> Settings:
    """Read the config file and the environment; raise `ProblemsFound` naming every bad key.

    `kinds` (`bot.sources.SOURCES`) checks each source's type and options; without it they are
    taken as written. `templates_dir` comes back resolved against the config file's folder.
    """
    env = dict(os.environ if environ is None else environ)
    path = find_config(explicit, env)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ProblemsFound(
                [Problem(str(path), "", f"not valid TOML ({e}); fix the syntax")]
            ) from e
        except OSError as e:
            raise ConfigError(
                f"cannot read it ({e.strerror}); check its permissions", path=str(path)
            ) from e
    settings, problems = parse_settings(raw, str(path or "(defaults)"), env, kinds)
    if path is not None:
        settings = replace(settings, config_path=path, base_dir=path.parent)
    if problems:
        raise ProblemsFound(problems)
    if settings.templates_dir is not None:
        # Relative to the config file like every other path (render uses it as given).
        settings = replace(settings, templates_dir=settings.resolve(settings.templates_dir))
    return settings


_NO_CONFIG = (
    "not found in {cwd}, and neither --config nor DIGESTBOT_CONFIG is set; "
    "run 'digestbot init' to write one here, or pass --config PATH"
)


def require_config_file(settings: Settings) -> None:
    """Refuse settings made of defaults alone (no config file found), saying how to make one."""
    if settings.config_path is None:
        raise ConfigError(_NO_CONFIG.format(cwd=Path.cwd()), path=DEFAULT_CONFIG)


def with_subscriptions(settings: Settings, folder: str | None) -> Settings:
    """The settings with another subscriptions folder (`--subscriptions`), when one is given."""
    return replace(settings, subscriptions_dir=Path(folder).resolve()) if folder else settings


def _check_type(
    problems: list[Problem],
    where: str,
    key: str,
    value: Any,
    kind: type | tuple[type, ...],
    hint: str,
) -> bool:
    if isinstance(value, bool) or not isinstance(value, kind):
        problems.append(Problem(where, key, f"{value!r} is not {hint}; write {hint}"))
        return False
    return True


def parse_settings(
    raw: Mapping[str, Any],
    where: str,
    env: Mapping[str, str],
    kinds: Mapping[str, SourceKind] | None = None,
) -> tuple[Settings, list[Problem]]:
    """Settings from a decoded config table and the environment, with every problem found.

    `kinds`: the source kinds to check `[[sources]]` against (see `load_settings`).
    """
    problems: list[Problem] = []
    values: dict[str, Any] = {"environ": env}
    for key in sorted(set(raw) - _TOP_KEYS):
        problems.append(
            Problem(where, key, f"unknown key; the keys are {', '.join(sorted(_TOP_KEYS))}")
        )
    for key in ("database_url", "base_url"):
        if key in raw and _check_type(problems, where, key, raw[key], str, "a string"):
            values[key] = raw[key]
    sync = raw.get("database_sqlite_synchronous")
    if sync is not None and _check_type(
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
        if key in raw and _check_type(problems, where, key, raw[key], str, "a path string"):
            values[key] = Path(raw[key])
    for key in ("fetch_interval_minutes", "corpus_days", "lookback_days"):
        if key in raw and _check_type(problems, where, key, raw[key], int, "a whole number"):
            if raw[key] < 1:
                problems.append(Problem(where, key, f"{raw[key]} is too small; give 1 or more"))
            else:
                values[key] = raw[key]
    if "from" in raw and _check_type(
        problems, where, "from", raw["from"], str, "an address string"
    ):
        values["from_addr"] = raw["from"]
    smtp = raw.get("smtp", {})
    if _check_type(problems, where, "smtp", smtp, dict, "a table [smtp]"):
        for key in sorted(set(smtp) - _SMTP_KEYS):
            hint = " (put the password in DIGESTBOT_SMTP_PASSWORD)" if key == "password" else ""
            problems.append(
                Problem(where, f"smtp.{key}", f"unknown key{hint}; the keys are url, rate")
            )
        if "url" in smtp and _check_type(problems, where, "smtp.url", smtp["url"], str, "a string"):
            values["smtp_url"] = smtp["url"]
        if "rate" in smtp and _check_type(
            problems, where, "smtp.rate", smtp["rate"], (int, float), "a number"
        ):
            values["smtp_rate"] = float(smtp["rate"])
    slack = raw.get("slack", {})
    if _check_type(problems, where, "slack", slack, dict, "a table [slack]"):
        for key in sorted(set(slack) - _SLACK_KEYS):
            hint = " (put the token in SLACK_BOT_TOKEN)" if "token" in key else ""
            problems.append(
                Problem(where, f"slack.{key}", f"unknown key{hint}; the key is api_url")
            )
        if "api_url" in slack and _check_type(
            problems, where, "slack.api_url", slack["api_url"], str, "a string"
        ):
            values["slack_api_url"] = slack["api_url"]
    _parse_bounces(raw.get("bounces", {}), where, values, problems)
    values["sources"] = _parse_sources(
        raw.get("sources", []), where, values.get("fetch_interval_minutes", 30), kinds, problems
    )
    for var, attr in _ENV.items():
        if env.get(var):
            values[attr] = env[var]
    if env.get("DIGESTBOT_SUBSCRIPTIONS"):
        values["subscriptions_dir"] = Path(env["DIGESTBOT_SUBSCRIPTIONS"])
    if env.get("DIGESTBOT_OUTBOX"):
        values["outbox_dir"] = Path(env["DIGESTBOT_OUTBOX"])
    return Settings(**values), problems


def _parse_sources(
    sources: Any,
    where: str,
    interval: int,
    kinds: Mapping[str, SourceKind] | None,
    problems: list[Problem],
) -> tuple[SourceSpec, ...]:
    """The `[[sources]]` tables as specs; each problem appended to `problems` (see `parse_settings`)."""
    specs: list[SourceSpec] = []
    seen: set[str] = set()
    if not _check_type(problems, where, "sources", sources, list, "a list of [[sources]] tables"):
        return ()
    for i, table in enumerate(sources):
        key = f"sources[{i}]"
        if not _check_type(problems, where, key, table, dict, "a [[sources]] table"):
            continue
        name, kind = table.get("name"), table.get("type")
        if not isinstance(name, str) or not name:
            problems.append(Problem(where, f"{key}.name", "missing; give each source a name"))
            continue
        key = f"sources[{name}]"
        if name in seen:
            problems.append(
                Problem(where, f"{key}.name", "used twice; give each source its own name")
            )
        seen.add(name)
        options = {k: v for k, v in table.items() if k not in _SOURCE_KEYS}
        if not _check_kind(problems, where, key, kind, options, kinds):
            continue
        every = table.get("interval_minutes", interval)
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            problems.append(
                Problem(
                    where,
                    f"{key}.interval_minutes",
                    f"{every!r} is not a whole number of minutes ≥ 1; write e.g. 30",
                )
            )
            every = interval
        specs.append(SourceSpec(name, kind, options, every))
    return tuple(specs)


def _check_kind(
    problems: list[Problem],
    where: str,
    key: str,
    kind: Any,
    options: Mapping[str, Any],
    kinds: Mapping[str, SourceKind] | None,
) -> bool:
    """Whether `kind` is a source type (any string when `kinds` is None); its options checked too."""
    if kinds is None:
        if isinstance(kind, str) and kind:
            return True
        problems.append(
            Problem(
                where,
                f"{key}.type",
                f'{kind!r} is not a source type; write type = "rss" or another',
            )
        )
        return False
    if kind not in kinds:
        problems.append(
            Problem(
                where,
                f"{key}.type",
                f"{kind!r} is not a source type; use one of {', '.join(sorted(kinds))}",
            )
        )
        return False
    known = kinds[kind].options
    for opt in sorted(set(options) - set(known)):
        allowed = ", ".join(sorted(set(known) | _SOURCE_KEYS))
        problems.append(
            Problem(where, f"{key}.{opt}", f"unknown key for type {kind!r}; the keys are {allowed}")
        )
    for opt, default in known.items():
        if default is None and opt not in options:
            problems.append(
                Problem(where, f"{key}.{opt}", f'missing; a {kind!r} source needs {opt} = "…"')
            )
    return True


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
    if not _check_type(problems, where, "bounces", table, dict, "a table [bounces]"):
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
        if value is None or not _check_type(problems, where, f"bounces.{key}", value, kind, what):
            continue
        if kind is int and value < 1:
            problems.append(
                Problem(where, f"bounces.{key}", f"{value} is too small; give 1 or more")
            )
        else:
            values[attr] = value


def mask_url(url: str) -> str:
    """A URL fit for logs: any password in it replaced by ***."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"
