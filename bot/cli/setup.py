"""Setting digestbot up: `init` (write a working setup), `check` (list every problem) and
`migrate` (upgrade the database schema)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .._console import plural
from ..config import Settings, with_subscriptions
from ..errors import BotError, ConfigError, ProblemsFound
from ..models import Subscriber
from ._context import Context, subscribers, subscriptions_option


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def init(obj: Context, directory: Path) -> None:
    """Write a working setup into DIRECTORY (default: here): a commented digestbot.toml, an
    example subscriber, the example feed and a templates/ folder to override. Never overwrites.

    \b
    Example (no network, no account: digests land in outbox/):
      mkdir mydigest && cd mydigest
      digestbot init && digestbot check && digestbot run --once
    """
    from ..scaffold import scaffold

    written = scaffold(directory)
    for path in written:
        obj.console.say(f"wrote {path}")
    where = "" if directory.resolve() == Path.cwd() else f"cd {directory} && "
    obj.console.say(
        f"\nNext: {where}digestbot check && digestbot run --once   (digests land in outbox/)"
    )


@click.command()
@subscriptions_option
@click.pass_obj
def check(obj: Context, subscriptions: str | None) -> None:
    """List every problem in the configuration and the subscription files; exit 1 if any.

    \b
    Example:
      digestbot check --subscriptions subscriptions/
    """
    problems: list[BotError] = []
    try:
        settings = obj.settings(subscriptions, need_file=True)
    except ProblemsFound as e:
        problems.extend(e.problems)
        settings = with_subscriptions(Settings(), subscriptions)
    except ConfigError as e:
        problems.append(e)
        settings = with_subscriptions(Settings(), subscriptions)
    else:
        from ..checks import sending_problems, template_problems

        problems.extend(sending_problems(settings))
        problems.extend(template_problems(settings))
    subs: list[Subscriber] = []
    try:
        subs, found = subscribers(settings, echo_problems=False)
        problems.extend(found)
    except ConfigError as e:
        problems.append(e)
    for p in problems:
        click.echo(str(p))
    if problems:
        click.echo(
            f"{plural(len(problems), 'problem')} found; {plural(len(subs), 'subscriber')} fine."
        )
        sys.exit(1)
    obj.console.say(
        f"No problems: {plural(len(settings.sources), 'source')}, "
        f"{plural(len(subs), 'subscriber')}."
    )


@click.command()
@click.option("--sql", is_flag=True, help="Print the SQL the upgrade would run; change nothing.")
@click.pass_obj
def migrate(obj: Context, sql: bool) -> None:
    """Upgrade the database schema to this digestbot's (every command does it at start too).

    \b
    Example:
      digestbot migrate
      digestbot migrate --sql > upgrade.sql    # for a DBA to review and run
    """
    from ..store import migrate as upgrade

    settings = obj.settings()
    done = upgrade(
        settings.database_url, sql=sql, sqlite_synchronous=settings.database_sqlite_synchronous
    )
    if sql:
        click.echo(done.sql)
    click.echo(str(done), err=sql)
