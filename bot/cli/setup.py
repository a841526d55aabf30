"""Setting digestbot up: `init` (write a working setup), `check` (list every problem) and
`migrate` (upgrade the database schema)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .._console import plural
from ..config import ConfigProblems, Settings, with_subscriptions
from ..errors import BotError, ConfigError
from ..models import Subscriber
from ..roster import Member, census, mark_text, receiving, roster_members
from ..store import open_store, sqlite_path
from ._context import Context, subscribers, subscriptions_option


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--outbox",
    is_flag=True,
    help="Choose the outbox (outbox_dir): digests are written to outbox/, sent to no one, "
    "while no SMTP or Slack is set up.",
)
@click.pass_obj
def init(obj: Context, directory: Path, outbox: bool) -> None:
    """Write a working setup into DIRECTORY (default: here): a commented digestbot.toml, an
    example subscriber, the example feed and a templates/ folder to override. Never overwrites.

    \b
    Example (a trial: no network, no account, digests land in outbox/):
      mkdir mydigest && cd mydigest
      digestbot init --outbox && digestbot check && digestbot run --once
    """
    from ..scaffold import scaffold

    written = scaffold(directory, outbox)
    for path in written:
        obj.console.say(f"wrote {path}")
    where = "" if directory.resolve() == Path.cwd() else f"cd {directory} && "
    then = (
        "(digests land in outbox/)"
        if outbox
        else "(set DIGESTBOT_SMTP_URL first, or uncomment outbox_dir for files)"
    )
    obj.console.say(f"\nNext: {where}digestbot check && digestbot run --once   {then}")


@click.command()
@subscriptions_option
@click.pass_obj
def check(obj: Context, subscriptions: str | None) -> None:
    """List every problem in the configuration and the subscription files, and every channel
    that cannot send to its subscribers (their digests would wait); exit 1 if any.

    \b
    Example:
      digestbot check --subscriptions subscriptions/
    """
    from ..checks import channel_problems, sending_problems, template_problems

    problems: list[BotError] = []
    read = False  # the config was read: its channels can be judged
    try:
        settings = obj.settings(subscriptions, need_file=True)
    except ConfigProblems as e:
        # What the file says despite its problems: the subscriptions beside it are still checked.
        problems.extend(e.problems)
        settings = with_subscriptions(e.settings, subscriptions)
    except ConfigError as e:
        problems.append(e)
        settings = with_subscriptions(Settings(), subscriptions)
    else:
        read = True
        problems.extend(sending_problems(settings))
        problems.extend(template_problems(settings))
    subs: list[Subscriber] = []
    try:
        subs, found = subscribers(settings, echo_problems=False)
        problems.extend(found)
    except ConfigError as e:
        problems.append(e)
    # the store's subscribers and marks, when the config was read (no database is guessed at)
    members, suspended = _members(settings, subs, problems) if read else (None, set[str]())
    waiting = 0
    if read:  # whose digests would wait at run time: a channel not set up, and no outbox chosen
        sent_to = (
            receiving(members, suspended) if members is not None else subs
        )  # as `run` sees them
        found, waiting = channel_problems(settings, sent_to)
        problems.extend(found)
    for p in problems:
        click.echo(str(p))
    if problems:
        counted = _counted(subs, members)
        state = (
            f"{counted} fine" if not waiting else f"{counted}: {waiting} would wait on a channel"
        )
        click.echo(f"{plural(len(problems), 'problem')} found; {state}.")
        sys.exit(1)
    for line in _mark_lines(members):
        obj.console.say(line)
    obj.console.say(
        f"No problems: {plural(len(settings.sources), 'source')}, {_counted(subs, members)}."
    )


def _members(
    settings: Settings, subs: list[Subscriber], problems: list[BotError]
) -> tuple[list[Member] | None, set[str]]:
    """Everyone `run` would see (bot.roster) and who is suspended by bounces, when the config was
    read and the database exists; a database that cannot be opened is one more problem."""
    if settings.config_path is None:
        return None, set()
    file = sqlite_path(settings.database_url)
    if file is not None and not file.exists():
        return None, set()  # no database yet: no web subscriber, no mark (and nothing is created)
    try:
        with open_store(settings) as store:
            members, found = roster_members(settings, store, (subs, []))
            suspended = store.suspensions()
    except BotError as e:
        problems.append(e)
        return None, set()
    problems.extend(found)
    return members, set(suspended)


def _counted(subs: list[Subscriber], members: list[Member] | None) -> str:
    """ "3 subscribers", or with web subscribers and marks "3 subscribers (2 from files, ...)"."""
    if members is None:
        return plural(len(subs), "subscriber")
    detail = census(members)
    receiving = sum(m.receives for m in members)
    return plural(receiving, "subscriber") + (f" ({detail})" if detail else "")


def _mark_lines(members: list[Member] | None) -> list[str]:
    """A line per file subscriber the web front paused or unsubscribed, or whose mark is for an
    address the file no longer names."""
    lines = []
    for m in members or []:
        if m.mark is None or m.mark.status == "active":
            continue
        mark = mark_text(m.mark)
        if m.old_mark:
            lines.append(f"{m.subscriber.origin}: mark for an old address, ignored: {mark}")
        else:
            lines.append(
                f"{m.subscriber.origin}: {mark}: no digests until resumed on the manage page"
            )
    return lines


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
