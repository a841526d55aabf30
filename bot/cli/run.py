"""The commands that do the work: `run` (fetch and send), `fetch` and `worker` (the Celery pool)."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from .._console import Console, plural, printed_by_the_command
from ..config import Settings
from ..errors import Problem
from ..models import OutcomeStatus
from ..store import open_store
from ..text import printable as clean
from ._context import Context, roster, subscriptions_option

if TYPE_CHECKING:
    from ..ingest import FetchReport


@click.command()
@click.option(
    "--once",
    is_flag=True,
    help="Fetch, send what is due, and exit (for cron); without it, run the scheduler.",
)
@click.option(
    "--workers",
    type=click.Choice(["inline", "celery"]),
    default="inline",
    show_default=True,
    help="celery: hand each due digest to the `digestbot worker` pool "
    "(needs DIGESTBOT_BROKER_URL and PostgreSQL).",
)
@subscriptions_option
@click.pass_obj
def run(obj: Context, once: bool, workers: str, subscriptions: str | None) -> None:
    """Fetch every source and send every digest that is due.

    \b
    Example (from cron, every hour):
      0 * * * *  cd /srv/digestbot && digestbot run --once
    Example (one scheduler, many `digestbot worker` processes):
      DIGESTBOT_BROKER_URL=redis://127.0.0.1:6379/0 digestbot run --workers celery
    """
    from ..delivery import run_once
    from ..ingest import fetch_all

    settings = obj.settings(subscriptions, need_file=True)
    if workers == "celery":
        _run_pool(obj, settings, once)
        return
    if not once:
        from ..scheduler import run_scheduler

        run_scheduler(settings)
        return
    console = obj.console
    with open_store(settings) as store:
        subs, problems = roster(settings, store)
        with console.progress("Fetching", len(settings.sources)) as step, _failures_printed(obj):
            reports = fetch_all(settings, store, progress=lambda _: step())
        _fetch_summary(console, reports)
        printed_by_the_command("bot.delivery.outbox")  # the outbox line below, even under -q
        with console.progress("Sending ", len(subs)) as step:
            report = run_once(settings, store, subs, progress=lambda _: step())
    _print_outcomes(console, report.recovered, report.outcomes)
    if note := report.outbox_note(settings):
        click.echo(note)
    failed = [
        o
        for o in report.outcomes + report.recovered
        if o.status in (OutcomeStatus.FAILED, OutcomeStatus.PENDING)
    ]
    _run_summary(console, report.outcomes + report.recovered, len(subs), failed, problems)
    if failed or problems or any(r.error for r in reports):
        sys.exit(1)  # a source that failed too: cron, timers and CronJobs must see it


@contextmanager
def _failures_printed(obj: Context) -> Iterator[None]:
    """While `run --once` fetches: a source's failure is not logged too, as `_fetch_summary` prints
    it (once). Kept in the log with -v and with --log-format json (a log collector wants it)."""
    from ..ingest import SOURCE_FAILED

    if obj.verbose or obj.log_format == "json":
        yield
        return
    ingest = logging.getLogger("bot.ingest")

    def not_a_failure(record: logging.LogRecord) -> bool:
        return not getattr(record, SOURCE_FAILED, False)

    ingest.addFilter(not_a_failure)
    try:
        yield
    finally:
        ingest.removeFilter(not_a_failure)


def _print_outcomes(console: Console, recovered: Sequence[Any], outcomes: Sequence[Any]) -> None:
    """A line per digest: re-sent pending ones, then each subscriber's; failures even under -q,
    and one line for many that wait for the same reason (a server down, a channel not set up)."""
    same = Counter(o.reason for o in [*recovered, *outcomes] if o.status == OutcomeStatus.PENDING)
    waiting: dict[str, list[str]] = {}
    for o in recovered:
        if same[o.reason] > 2 and o.status == OutcomeStatus.PENDING:
            waiting.setdefault(o.reason, []).append(o.subscriber)
            continue
        line = f"{o.subscriber}: re-sent pending digest {o.digest_id}: {o.status}" + (
            f" ({clean(o.reason)})" if o.reason and o.status != OutcomeStatus.SENT else ""
        )
        (console.say if o.status == OutcomeStatus.SENT else click.echo)(line)
    for o in outcomes:
        if o.status == OutcomeStatus.SENT:
            console.say(
                f"{o.subscriber}: sent {o.entries} entr{'y' if o.entries == 1 else 'ies'} "
                f"to {o.destination}"
            )
        elif o.status in (OutcomeStatus.EMPTY, OutcomeStatus.NOT_DUE):
            console.say(
                f"{o.subscriber}: 0 new entries for {o.subscriber}"
                + (" (not due yet)" if o.status == "not-due" else "")
            )
        elif o.status == "skipped":
            console.say(f"{o.subscriber}: skipped ({o.reason})")
        elif o.status == OutcomeStatus.PENDING and same[o.reason] > 2:
            waiting.setdefault(o.reason, []).append(o.subscriber)
        else:
            click.echo(f"{o.subscriber}: {o.status.upper()}: {clean(o.reason)}")
    for reason, who in waiting.items():
        names = ", ".join(who[:5]) + (f" and {len(who) - 5} more" if len(who) > 5 else "")
        click.echo(f"{len(who)} digests PENDING ({names}): {clean(reason)}")


def _run_pool(obj: Context, settings: Settings, once: bool) -> None:
    """`run --workers celery`: this process fetches and dispatches; the workers send."""
    from ..delivery import outbox_line
    from ..ingest import fetch_all
    from ..pool import dispatch_tick, require_pool, run_dispatcher

    require_pool(settings)
    if not once:
        run_dispatcher(
            settings, lambda st: roster(settings, st)[0], fetch=lambda st: fetch_all(settings, st)
        )
        return
    with open_store(settings) as store:
        subs, problems = roster(settings, store)
        with _failures_printed(obj):
            reports = fetch_all(settings, store)
        _fetch_summary(obj.console, reports)
        r = dispatch_tick(settings, store, subs)
    obj.console.say(
        f"dispatched to the pool: {r.enqueued} digests queued, "
        f"{r.requeued} stalled ones queued again, "
        f"{r.empty} with no new entries, {r.skipped} claimed elsewhere, {r.idle} not due"
    )
    if note := outbox_line(settings, r.outbox, "are queued for"):
        click.echo(note)  # even under -q, as `run --once` says it
    if problems or any(x.error for x in reports):
        sys.exit(1)


def _fetch_summary(console: Console, reports: Sequence[FetchReport]) -> None:
    """One line for all sources; a line of its own for each source that failed."""
    bad = [r for r in reports if r.error]
    good = [r for r in reports if not r.error]
    new, updated, unchanged = (
        sum(r.new for r in good),
        sum(r.updated for r in good),
        sum(r.unchanged for r in good),
    )
    console.say(
        f"fetched {plural(len(good), 'source')}: "
        f"{new} new, {updated} updated, {unchanged} unchanged"
        + (f"; {len(bad)} failed" if bad else "")
    )
    for r in bad:
        click.echo(f"fetch {r.source}: FAILED: {clean(r.error)}")


def _run_summary(
    console: Console,
    outcomes: Sequence[Any],
    total: int,
    failed: Sequence[Any],
    problems: Sequence[Problem],
) -> None:
    """The closing table: subscribers served, entries sent, failures with their reasons."""
    sent = [o for o in outcomes if o.status == OutcomeStatus.SENT]
    bad_files = sorted({p.path for p in problems})
    rows = [
        ["subscribers served", f"{len({o.subscriber for o in sent})} of {total + len(bad_files)}"],
        ["entries sent", str(sum(o.entries for o in sent))],
        ["failures", str(len(failed) + len(bad_files))],
    ]
    rows += [[f"  {o.subscriber}", f"{o.status}: {clean(o.reason)}"] for o in failed]
    rows += [
        [f"  {path}", "skipped: the file has a problem (see the warnings)"] for path in bad_files
    ]
    console.say()
    console.table(rows)


@click.command()
@click.option(
    "--source",
    "names",
    multiple=True,
    metavar="NAME",
    help="Fetch only this source; repeat for several.",
)
@click.pass_obj
def fetch(obj: Context, names: Sequence[str]) -> None:
    """Fetch every configured source into the database and say what each brought.

    Exits 1 when any source failed (the others are still fetched and stored).

    \b
    Example:
      digestbot fetch
      digestbot fetch --source arxiv-lg
    """
    from ..ingest import fetch_all

    settings = obj.settings()
    specs = list(settings.sources)
    unknown = sorted(set(names) - {s.name for s in specs})
    if unknown:
        raise click.UsageError(
            f"no source named {', '.join(map(repr, unknown))}; the sources are "
            f"{', '.join(s.name for s in specs) or '(none configured)'}"
        )
    if names:
        specs = [s for s in specs if s.name in names]
    if not specs:
        click.echo("No sources configured; add a [[sources]] table to digestbot.toml.")
        return
    printed_by_the_command("bot.ingest")  # every error and warning is printed below
    with open_store(settings) as store:
        if sys.stderr.isatty():
            bar: Any
            with click.progressbar(
                length=len(specs),
                label="Fetching",
                file=sys.stderr,
                item_show_func=lambda r: r.source if r else None,
            ) as bar:
                reports = fetch_all(
                    settings, store, specs, progress=lambda report: bar.update(1, report)
                )
        else:
            reports = fetch_all(settings, store, specs)
    _print_fetch(reports)
    failed = [r for r in reports if r.error]
    if failed:
        click.echo(
            f"{len(failed)} of {len(reports)} source{'s' if len(reports) != 1 else ''} failed.",
            err=True,
        )
        sys.exit(1)


def _print_fetch(reports: Sequence[FetchReport]) -> None:
    """`fetch`'s table: a line per source with its counts or its failure, then its warnings."""
    width = max(len(r.source) for r in reports)
    for r in reports:
        if r.error:
            click.echo(f"{r.source:<{width}}  FAILED: {r.error}")
            continue
        note = "  (not modified)" if r.not_modified else ""
        click.echo(
            f"{r.source:<{width}}  {r.new} new, {r.updated} updated, "
            f"{r.unchanged} unchanged, 0 errors{note}"
        )
        for w in r.warnings:
            click.echo(f"{'':<{width}}  warning: {w}")


@click.command()
@click.option(
    "--loglevel",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    help="The worker's log level.",
)
@click.pass_obj
def worker(obj: Context, loglevel: str) -> None:
    """Start a Celery worker that sends the digests `run --workers celery` dispatches.

    Needs DIGESTBOT_BROKER_URL and a PostgreSQL DIGESTBOT_DATABASE_URL. Run as many as you need;
    SIGTERM finishes the digest in hand, then stops.

    \b
    Example:
      DIGESTBOT_BROKER_URL=redis://127.0.0.1:6379/0 digestbot worker
    """
    from ..pool import start_worker

    start_worker(obj.settings(), loglevel)
