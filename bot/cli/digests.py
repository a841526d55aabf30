"""A subscriber's digests: the past (`history`), the next (`preview`), and votes (`feedback`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from .._console import plural
from ..config import Settings
from ..errors import ConfigError
from ..models import DigestItem, DigestStatus
from ..slack.members import key_of_id
from ..store import DigestRow, open_store, sqlite_path
from ..text import printable as clean
from ._context import Context, roster, subscriptions_option
from .bounces import suspension_lines


@click.command()
@click.argument("subscriber")
@click.option(
    "-n",
    "--limit",
    default=10,
    show_default=True,
    metavar="N",
    type=click.IntRange(min=1),
    help="The latest N digests (at least 1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def history(obj: Context, subscriber: str, limit: int, as_json: bool) -> None:
    """What was sent to SUBSCRIBER, when, and why: the latest digests, newest first.

    \b
    Example:
      digestbot history alice --limit 3
    """
    settings = obj.settings()
    file = settings.resolve(settings.subscriptions_dir) / f"{subscriber}.toml"
    unknown = ConfigError(
        f"no subscriber {subscriber!r}: nothing in the ledger and no file {file}; check the "
        "name (the subscriber id is the file name without .toml)"
    )
    rows: list[DigestRow] = []
    items: dict[str, list[DigestItem]] = {}
    on_the_web = False
    db = sqlite_path(settings.database_url)
    if db is None or db.exists():  # no database yet: nothing sent (and none made by reading)
        with open_store(settings) as store:
            rows = store.history(subscriber, limit=limit)
            items = store.digest_items_of(r.id for r in rows)
            on_the_web = not rows and store.web_subscriber(subscriber) is not None
            member = key_of_id(subscriber)  # a Slack member's id (/papers)
            on_the_web = on_the_web or (
                member is not None and store.slack_member(*member) is not None
            )
    if not rows and not on_the_web and not file.is_file():  # --json too: not an empty list
        raise unknown
    if as_json:
        click.echo(
            json.dumps([_history_json(r, items[r.id]) for r in rows], ensure_ascii=False, indent=1)
        )
        return
    if not rows:
        click.echo(f"{subscriber}: nothing sent yet; 'digestbot run --once' sends what is due")
        return
    for r in rows:
        click.echo(_history_head(r, len(items[r.id])))
        for n, item in enumerate(items[r.id], 1):
            click.echo(f"  {n}. {clean(item.entry.title)}")
            click.echo(
                f"     {clean(item.entry.id)}  score {item.score:.3f}"
                + (f"  topic {clean(item.topic)}" if item.topic else "")
            )
            if item.why:
                click.echo(f"     why: {clean('; '.join(item.why))}")
    with open_store(settings) as store:
        suspension_lines(store, subscriber)


def _history_json(r: DigestRow, items: list[DigestItem]) -> dict[str, object]:
    """One digest of `history --json`."""
    return {
        "id": r.id,
        "slot": r.slot.isoformat(),
        "status": r.status,
        "channel": r.channel,
        "sent_at": r.sent_at.isoformat() if r.sent_at else None,
        "attempts": r.attempts,
        "reason": r.reason,
        "more": r.more,
        "entries": [
            {
                "id": i.entry.id,
                "title": i.entry.title,
                "url": i.entry.url,
                "score": round(i.score, 4),
                "why": list(i.why),
                "topic": i.topic,
            }
            for i in items
        ],
    }


def _history_head(r: DigestRow, count: int) -> str:
    """One digest's line in `history`: its slot, its fate, and where it went."""
    slot = f"{r.slot:%Y-%m-%d %H:%M} UTC"
    if r.status == DigestStatus.SENT:
        entries = plural(count, "entry", "entries")
        fate = f"sent {r.sent_at:%Y-%m-%d %H:%M} UTC via {r.channel}, {entries}"
    elif r.status == DigestStatus.FAILED:
        fate = f"FAILED via {r.channel}: {clean(r.reason)}"
    elif r.status == DigestStatus.PENDING:
        fate = f"pending after {plural(r.attempts, 'attempt')}" + (
            f": {clean(r.reason)}" if r.reason else ""
        )
    else:
        fate = r.status
    more = f" (+{r.more} more not sent: max_items)" if r.more else ""
    return f"{r.id}  slot {slot}  {fate}{more}"


@click.command()
@click.argument("subscriber")
@click.option(
    "--out",
    "out",
    default="preview",
    show_default=True,
    metavar="DIR",
    help="Where to write the files.",
)
@click.option("--open", "open_html", is_flag=True, help="Open the HTML in a web browser.")
@subscriptions_option
@click.pass_obj
def preview(
    obj: Context, subscriber: str, out: str, open_html: bool, subscriptions: str | None
) -> None:
    """Render SUBSCRIBER's next digest to files (.html, .txt, .json); nothing is sent or recorded.

    \b
    Example:
      digestbot preview alice --open
    """
    from ..delivery import next_digest, write_preview

    settings = obj.settings(subscriptions)
    _database_exists(settings)
    with open_store(settings) as store:
        subs, _ = roster(settings, store)
        found = {s.id: s for s in subs}
        if subscriber not in found:
            from ..roster import roster_members

            members, _ = roster_members(settings, store)
            state = next((m.state for m in members if m.subscriber.id == subscriber), "")
            if state and subscriber in store.suspensions():
                raise ConfigError(
                    f"{subscriber!r} is suspended by bounces: no digest goes to them now; "
                    f"'digestbot resume {subscriber}' lifts it"
                )
            if state:  # known, but `run` sends them nothing now
                raise ConfigError(
                    f"{subscriber!r} is {state}: no digest goes to them now; 'digestbot status' "
                    "shows since when (a file subscriber is resumed from the manage link)"
                )
            raise ConfigError(
                f"no subscriber {subscriber!r}; the subscribers are: "
                f"{', '.join(sorted(found)) or 'none'} (a file subscriber's id is its file name "
                "without .toml; 'digestbot status' lists them all)"
            )
        digest = next_digest(settings, store, found[subscriber], datetime.now(UTC))
    paths = write_preview(settings, digest, Path(out))
    click.echo(
        f"{subscriber}: next digest {digest.id} with "
        f"{plural(len(digest.items), 'entry', 'entries')}"
        + (f" (+{digest.more} more)" if digest.more else "")
    )
    for kind in ("html", "txt", "json"):
        click.echo(f"  {paths[kind]}")
    if open_html:
        import webbrowser

        webbrowser.open(paths["html"].resolve().as_uri())


@click.command()
@click.argument("subscriber")
@click.argument("entry")
@click.argument("vote", type=click.Choice(["up", "down"]))
@click.pass_obj
def feedback(obj: Context, subscriber: str, entry: str, vote: str) -> None:
    """Record a 👍 (up) or 👎 (down) from SUBSCRIBER on ENTRY; the matcher learns from it.

    ENTRY is an id as `digestbot history` shows it; an arXiv paper may also be given as its bare
    id (2401.12345, 2401.12345v2) or its abs/pdf URL.

    \b
    Example:
      digestbot feedback alice arxiv:2401.12345 up
      digestbot feedback alice https://arxiv.org/abs/2401.12345v2 down
    """
    from ..roster import roster_members
    from ..sources._ids import arxiv_id, canonical_id

    settings = obj.settings()
    # An arXiv paper however it is written (bare id, version, abs/pdf URL) is the store's id.
    entry = canonical_id(entry) if arxiv_id(entry) else entry.strip()
    _database_exists(settings)
    with open_store(settings) as store:
        members, _ = roster_members(settings, store)
        known = sorted(m.subscriber.id for m in members)
        if subscriber not in known:
            raise ConfigError(
                f"no subscriber {subscriber!r}; the subscribers are: {', '.join(known) or 'none'} "
                "(a file subscriber's id is its file name without .toml; 'digestbot status' "
                "lists them all)"
            )
        store.record_feedback(subscriber, entry, 1 if vote == "up" else -1, datetime.now(UTC))
    click.echo(f"Recorded {'👍' if vote == 'up' else '👎'} from {subscriber} on {entry}.")


def _database_exists(settings: Settings) -> None:
    """A ConfigError (exit 1, not a usage error) when the SQLite file is not there yet: these
    commands need what `run` recorded, and opening the store would make an empty one."""
    db = settings.database_url
    file = sqlite_path(db)
    if file is not None and not file.exists():
        raise ConfigError(
            f"no database at {db} yet; run 'digestbot run --once' first to fetch entries"
        )
