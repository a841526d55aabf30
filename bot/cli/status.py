"""`digestbot status`: each subscriber's next and last digest, the open digests, each source."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click

from ..config import Settings
from ..models import Subscriber
from ..store import Store, open_store
from ..text import clip
from ._context import Context, subscribers, subscriptions_option
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
    subs, problems = subscribers(settings)
    now = datetime.now(UTC)
    with open_store(settings) as store:
        click.echo(f"Subscribers ({len(subs)}):")
        for sub in subs:
            _subscriber_lines(store, sub, now, items)
        _open_digest_lines(store)
        _source_lines(store, settings)
        suspension_lines(store)
    if problems:
        click.echo(
            f"{len(problems)} subscription file{'s' if len(problems) != 1 else ''} with problems; "
            "'digestbot check' lists them."
        )


def _subscriber_lines(store: Store, sub: Subscriber, now: datetime, items: bool) -> None:
    """A subscriber's address and schedule, next and last digest (with `items`: its entries)."""
    from ..slots import next_slot

    click.echo(f'  {sub.id}  {clip(sub.address)}  "{sub.schedule}" {sub.timezone}')
    click.echo(f"    next digest: {_when(next_slot(sub, now), sub.timezone)}")
    last = store.history(sub.id, 1)
    if not last:
        click.echo("    last digest: none yet")
        return
    row = last[0]
    held = store.digest_items(row.id) if row.status in ("sent", "pending") else []
    detail = {
        "sent": f"sent {_when(row.sent_at)}",
        "empty": "nothing new to send",
        "failed": f"failed: {clip(row.reason)}",
        "pending": f"pending: {clip(row.reason) or 'in flight'}",
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
    for state in ("pending", "failed"):
        rows = store.digests_with_status(state)
        click.echo(f"{state.capitalize()} digests ({len(rows)}):")
        for r in rows:
            owner = (
                f", held by {r.owner} until {_when(r.lease_until)}"
                if state == "pending" and r.owner
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
