"""What every command shares: the settings (loaded once), the console, subscriber warnings."""

from __future__ import annotations

from collections.abc import Sequence

import click

from .._console import Console
from ..config import Settings, load_settings, require_config_file, with_subscriptions
from ..errors import Problem
from ..models import Subscriber
from ..roster import file_subscribers, load_roster
from ..store import Store


class Context:
    """The global options and what they give every command: settings, verbosity and the console."""

    def __init__(
        self, config: str | None, verbose: int = 0, quiet: bool = False, log_format: str = "text"
    ) -> None:
        self.config = config
        self.verbose = verbose
        self.quiet = quiet
        self.log_format = log_format
        self.console = Console(quiet=quiet)
        self._settings: Settings | None = None

    def settings(
        self, subscriptions: str | None = None, *, need_file: bool | None = None
    ) -> Settings:
        """The settings, with --subscriptions applied.

        `need_file`: refuse defaults alone (no config file found). By default a command that
        opens the database needs a config file or DIGESTBOT_DATABASE_URL, so that no
        `./digestbot.db` appears wherever it is run. A command that sends mail is refused here,
        at its start, while mail may not go out (`Settings.sending_problem`).
        """
        if self._settings is None:
            from ..sources import SOURCES  # the source kinds [[sources]] are checked against

            self._settings = load_settings(self.config, kinds=SOURCES)
        settings, command = self._settings, _command()
        if need_file is None:
            need_file = command not in WITHOUT_DATABASE and not settings.environ.get(
                "DIGESTBOT_DATABASE_URL"
            )
        if need_file:
            require_config_file(settings)
        if command in SENDING and (refused := settings.sending_problem()) is not None:
            raise refused
        return with_subscriptions(settings, subscriptions)


# Commands that work on defaults alone: they read files and open no database.
WITHOUT_DATABASE = frozenset({"match", "topics", "init"})
# Commands that send mail (digests, confirmation links).
SENDING = frozenset({"run", "worker", "serve"})


def _command() -> str:
    """The name of the command being run ("" outside click)."""
    ctx = click.get_current_context(silent=True)
    return (ctx.info_name or "") if ctx is not None else ""


subscriptions_option = click.option(
    "--subscriptions", metavar="DIR", help="The subscriptions folder (default: the configured one)."
)


def warn_skipped(problems: Sequence[Problem]) -> None:
    """One warning line on stderr per subscriber file that is skipped."""
    for p in problems:
        click.echo(f"warning: {p} (this subscriber is skipped)", err=True)


def subscribers(
    settings: Settings, echo_problems: bool = True
) -> tuple[list[Subscriber], list[Problem]]:
    """The good file subscribers and the problems of the bad files; a missing or unreadable folder
    is an error."""
    subs, problems = file_subscribers(settings, require_folder=True)
    if echo_problems:
        warn_skipped(problems)
    return subs, problems


def roster(settings: Settings, store: Store) -> tuple[list[Subscriber], list[Problem]]:
    """File subscribers plus web subscribers (bot.roster), with every problem warned about."""
    subs, problems = load_roster(settings, store, file_subscribers(settings, require_folder=True))
    warn_skipped(problems)
    return subs, problems
