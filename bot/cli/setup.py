"""Setting digestbot up: `init` (write a working setup) and `check` (list every problem)."""

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
