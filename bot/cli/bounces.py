"""Bounces and complaints: `bounces` (read the bounce mailbox), `resume` (lift a suspension),
and the lines `status` and `history` print about suspended subscribers."""

from __future__ import annotations

import click

from .._console import plural
from ..errors import ConfigError
from ..store import Store, open_store
from ..text import clip
from ._context import Context


@click.command()
@click.pass_obj
def bounces(obj: Context) -> None:
    """Read the bounce mailbox: record bounces and complaints, suspend or unsubscribe by the
    policy, move them to the processed folder; list the messages left there, and why.

    \b
    Example:
      DIGESTBOT_BOUNCE_IMAP_URL=imaps://bounces@mail.example.org/INBOX \\
      DIGESTBOT_BOUNCE_IMAP_PASSWORD=… digestbot bounces
    """
    from ..bounces.mailbox import check_mailbox

    settings = obj.settings()
    with open_store(settings) as store:
        report = check_mailbox(settings, store)
    click.echo(
        f"Bounce mailbox: {plural(len(report.recorded), 'message')} recorded and moved to "
        f"{settings.bounce_processed_folder!r}, {len(report.left)} left."
    )
    for h in report.recorded:
        v = h.verdict
        done = f": {h.action}" if h.action else ""
        click.echo(  # all of it read from a stranger's mail: no control character gets through
            f"  {v.kind} {clip(v.subscriber_id, 100)} "
            + f"{clip(v.code, 20)} {clip(v.reason, 100)}{done}".strip()
        )
    for h in report.left:
        click.echo(f"  left message {clip(str(h.uid), 20)}: {clip(h.verdict.reason, 300)}")


@click.command()
@click.argument("subscriber")
@click.pass_obj
def resume(obj: Context, subscriber: str) -> None:
    """Lift SUBSCRIBER's suspension by bounces: digests go to it again from the next run.

    \b
    Example:
      digestbot resume alice
    """
    with open_store(obj.settings()) as store:
        found = store.suspensions().get(subscriber)
        if found is None or not store.resume(subscriber):
            raise ConfigError(f"{subscriber!r} is not suspended; 'digestbot status' lists who is")
    click.echo(f"Resumed {subscriber} (suspended {found.at:%Y-%m-%d}: {clip(found.reason)}).")


def suspension_lines(store: Store, subscriber: str | None = None) -> None:
    """The suspended subscribers (or one of them) and why, for `status` and `history`; nothing
    when no one (or not that one) is suspended."""
    found = store.suspensions()
    if subscriber is not None:
        one = found.get(subscriber)
        if one is not None:
            click.echo(
                f"{subscriber} is SUSPENDED since {one.at:%Y-%m-%d %H:%M} UTC: {clip(one.reason)}; "
                f"'digestbot resume {subscriber}' lifts it"
            )
        return
    if not found:
        return  # nothing to say: the section shows only when someone is suspended
    click.echo(f"Suspended by bounces ({len(found)}):")
    for s in sorted(found.values(), key=lambda s: s.subscriber_id):
        click.echo(f"  {s.subscriber_id}  since {s.at:%Y-%m-%d %H:%M} UTC: {clip(s.reason)}")
