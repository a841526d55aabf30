"""digestbot's exceptions: one root, each message ends with the fix."""

from __future__ import annotations


class BotError(Exception):
    """Root of every error digestbot reports to a user."""

    exit_code = 1


class ConfigError(BotError):
    """A problem in digestbot.toml or the environment."""

    def __init__(self, message: str, *, path: str = "", key: str = "") -> None:
        self.path = path
        self.key = key
        where = ": ".join(p for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class Problem(BotError):
    """One problem found while checking a file: the file, the key, what is wrong and the fix."""

    def __init__(self, path: str, key: str, message: str) -> None:
        self.path = path
        self.key = key
        self.message = message
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


class ProblemsFound(BotError):
    """Several problems found at once (as by `digestbot check`)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) found:\n{lines}")


class ScheduleError(BotError, ValueError):
    """A cron line digestbot cannot read (a `ValueError` too, as APScheduler's own are)."""


class SourceError(BotError):
    """A source could not be fetched or parsed."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"source {source!r}: {message}")


class TokenError(BotError):
    """A link token that is malformed, forged, of the wrong kind or expired."""


class StoreError(BotError):
    """The database could not be reached or used."""


class SendError(BotError):
    """A channel could not deliver a digest.

    An SMTP refusal says what was refused (`smtp_stage`: "recipient", "message to", "sender"),
    its reply code and enhanced status ("5.1.1"): bot.bounces records it against the subscriber.
    """

    smtp_stage: str = ""
    smtp_code: int = 0
    smtp_status: str = ""

    def __init__(self, message: str, *, transient: bool) -> None:
        self.transient = transient
        super().__init__(message)


class TransientSendError(SendError):
    """A failure worth retrying later: SMTP 4xx, Slack 429/5xx, a dropped connection.

    `retry_after`: seconds the peer asked to wait before the next try (Slack's Retry-After; 0: none).
    """

    def __init__(self, message: str, *, retry_after: float = 0.0) -> None:
        self.retry_after = retry_after
        super().__init__(message, transient=True)


class PermanentSendError(SendError):
    """A failure that retrying will not fix: SMTP 5xx, channel_not_found, is_archived."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


class ChannelDownError(PermanentSendError):
    """The channel cannot send anything as it is set up: its server refused the login, its TLS
    certificate is not trusted, it offers no STARTTLS or AUTH where digestbot needs one, Slack
    refused the bot token (then only what goes with that token: `Channel.down_scope`).

    No digest is to blame and no retry in this run mends it: the run leaves the channel's digests
    pending, tries the channel no more (a wrong password is tried once per run, not once per
    digest: no account lockout), and the first run after the fix sends them (`bot.delivery.send`).
    Outside a run (the web's confirmation mail) it is a permanent failure like any other.
    """


class UnreachableError(TransientSendError):
    """The server could not be reached at all (connection refused, timed out, no such host).

    Two digests in a row that cannot reach it: the run leaves the rest of the channel's digests
    pending for the next run instead of spending its retries on each (`bot.delivery.send`).
    """


class TemplateError(BotError):
    """A template that does not compile or render: its file, the line and the problem.

    Made from Jinja2's errors by `bot.template_errors.template_error`.
    """

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}, line {line}" if line else path
        super().__init__(
            f"{where}: {problem}; fix the template (README, 'Templates', lists what it may use)"
        )
