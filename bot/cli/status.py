"""`digestbot status`: each subscriber's next and last digest, the open digests, each source."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click

from .._console import plural
from ..config import Settings
from ..models import DigestStatus
from ..roster import Member, mark_text, roster_members
from ..store import Store, open_store
from ..text import clip
from ._context import Context, subscribers, subscriptions_option, warn_skipped
from .bounces import suspension_lines


def _when(t: datetime | None, zone: str = "UTC") -> str:
    if t is None:
        return "never"
    local = t.astimezone(ZoneInfo(zone))
    text = f"{local:%Y-%m-%d %H:%M %Z}"
    return text if zone == "UTC" else f"{text} ({t.astimezone(UTC):%H:%M} UTC)"


@click.command()
@subscriptions_option
@click.option("--items/--no-items", default=True, help="List the entries of each last digest.")
@click.option(
    "--pool",
    "pool_only",
    is_flag=True,
    help="Only the worker pool: queued, running, pending and failed digests.",
)
@click.pass_obj
def status(obj: Context, subscriptions: str | None, items: bool, pool_only: bool) -> None:
    """Each subscriber's next and last digest, pending and failed digests, each source's last fetch.

    With a worker pool (DIGESTBOT_BROKER_URL), first the pool: queued, running, pending, failed.

    \b
    Example:
      digestbot status --no-items
    """
    settings = obj.settings(subscriptions)
    if settings.broker_url or pool_only:
        _pool_summary(settings)
        if pool_only:
            return
    files = subscribers(settings, echo_problems=False)
    now = datetime.now(UTC)
    with open_store(settings) as store:
        members, problems = roster_members(settings, store, files)
        warn_skipped(problems)
        receiving = sum(m.receives for m in members)
        more = f", {receiving} receive digests" if receiving != len(members) else ""
        click.echo(f"Subscribers ({len(members)}{more}):")
        for member in members:
            _subscriber_lines(store, member, now, items)
        _open_digest_lines(store)
        _source_lines(store, settings)
        suspension_lines(store)
    if problems:
        click.echo(f"{plural(len(problems), 'subscriber problem')}; 'digestbot check' lists them.")


def _next_line(member: Member, now: datetime) -> str:
    """When the next digest comes, or why none comes."""
    from ..slots import next_slot

    sub = member.subscriber
    if member.receives:
        return f"next digest: {_when(next_slot(sub, now), sub.timezone)}"
    if member.mark is not None:
        return f"next digest: none, {mark_text(member.mark)}"
    since = f" since {_when(member.since)}" if member.since else ""
    if member.state == "pending confirmation":
        return f"next digest: none until the address is confirmed (asked {_when(member.since)})"
    return f"next digest: none, {member.state}{since}"


def _subscriber_lines(store: Store, member: Member, now: datetime, items: bool) -> None:
    """A subscriber's address and schedule, origin and state, next and last digest (with
    `items`: its entries)."""
    sub = member.subscriber
    click.echo(
        f'  {sub.id}  {clip(sub.address)}  "{sub.schedule}" {sub.timezone}  '
        f"({member.origin}, {member.state})"
    )
    click.echo(f"    {_next_line(member, now)}")
    if member.old_mark and member.mark is not None:
        click.echo(f"    mark for an old address, ignored: {mark_text(member.mark)}")
    last = store.history(sub.id, 1)
    if not last:
        click.echo("    last digest: none yet")
        return
    row = last[0]
    held = (
        store.digest_items(row.id)
        if row.status in (DigestStatus.SENT, DigestStatus.PENDING)
        else []
    )
    detail = {
        DigestStatus.SENT: f"sent {_when(row.sent_at)}",
        DigestStatus.EMPTY: "nothing new to send",
        DigestStatus.FAILED: f"failed: {clip(row.reason)}",
        DigestStatus.PENDING: f"pending: {clip(row.reason) or 'in flight'}",
    }
    click.echo(
        f"    last digest: {_when(row.slot, sub.timezone)}, {detail.get(row.status, row.status)}"
        + (f", {len(held)} entr{'y' if len(held) == 1 else 'ies'}" if held else "")
    )
    if items:
        for it in held:
            click.echo(f"      - {clip(it.entry.title, 100)}  [{clip(it.entry.id, 80)}]")


def _open_digest_lines(store: Store) -> None:
    """The pending digests (with who holds them) and the failed ones."""
    for state in (DigestStatus.PENDING, DigestStatus.FAILED):
        rows = store.digests_with_status(state)
        click.echo(f"{state.capitalize()} digests ({len(rows)}):")
        for r in rows:
            owner = (
                f", held by {r.owner} until {_when(r.lease_until)}"
                if state == DigestStatus.PENDING and r.owner
                else ""
            )
            click.echo(
                f"  {r.id}  {r.channel}, "
                f"{r.attempts} attempt{'s' if r.attempts != 1 else ''}{owner}"
                + (f": {clip(r.reason)}" if r.reason else "")
            )


def _source_lines(store: Store, settings: Settings) -> None:
    """Each configured source's last fetch: its counts, or its error and last success."""
    sources = {s.name: s for s in store.source_statuses()}
    click.echo(f"Sources ({len(settings.sources)}):")
    for spec in settings.sources:
        st = sources.get(spec.name)
        if st is None:
            click.echo(f"  {spec.name}  never fetched")
            continue
        counts = ", ".join(f"{v} {k}" for k, v in st.counts.items())
        outcome = (
            f"FAILED: {clip(st.last_error)} (last success {_when(st.last_success)})"
            if st.last_error
            else f"ok ({counts})"
        )
        click.echo(f"  {spec.name}  last fetch {_when(st.last_fetch)}  {outcome}")


def _pool_summary(settings: Settings) -> None:
    """`digestbot status`'s worker-pool section: queued, running, pending and failed digests."""
    from ..pool import pool_status

    with open_store(settings) as store:
        st = pool_status(settings, store)
    click.echo("Worker pool:")
    if not settings.broker_url:
        click.echo("  queued:  no worker pool (DIGESTBOT_BROKER_URL is not set)")
    else:
        click.echo(
            f"  queued:  {'broker unreachable' if st.queued is None else st.queued} "
            f"(tasks waiting in {settings.queue!r})"
        )
        click.echo(f"  workers: {'unknown' if st.workers is None else st.workers} answering")
    click.echo(f"  running: {st.running}")
    click.echo(
        f"  pending: {st.pending} ({st.waiting} waiting for a worker, {st.running} running, "
        f"{st.stalled} stalled: re-enqueued on the next tick)"
    )
    click.echo(f"  failed:  {st.failed}")
    for row in st.recent_failures:
        click.echo(f"    {row.id}: {clip(row.reason)}")
