"""The `digestbot` command: the one place that prints, catches `BotError` and exits."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from . import __version__
from ._console import Console, clean, plural, setup_logging
from .config import DEFAULT_CONFIG, Settings, load_settings
from .errors import BotError, ConfigError, Problem, ProblemsFound
from .models import Entry, Subscriber
from .roster import file_subscribers
from .store import Store


class Context:
    """What every command shares: the settings (loaded once), verbosity and the console."""

    def __init__(self, config: str | None, verbose: int = 0, quiet: bool = False, log_format: str = "text") -> None:
        self.config = config
        self.verbose = verbose
        self.quiet = quiet
        self.log_format = log_format
        self.console = Console(quiet=quiet)
        self._settings: Settings | None = None

    def settings(self, subscriptions: str | None = None, *, need_file: bool = False) -> Settings:
        """The settings, with --subscriptions applied; `need_file`: refuse to run on defaults alone."""
        if self._settings is None:
            settings = load_settings(self.config)
            if settings.templates_dir is not None:
                # Relative to the config file like every other path (render uses it as given).
                settings = replace(settings, templates_dir=settings.resolve(settings.templates_dir))
            self._settings = settings
        if need_file and self._settings.config_path is None:
            raise ConfigError(_NO_CONFIG.format(cwd=Path.cwd()), path=DEFAULT_CONFIG)
        if subscriptions:
            return replace(self._settings, subscriptions_dir=Path(subscriptions).resolve())
        return self._settings


_NO_CONFIG = ("not found in {cwd}, and neither --config nor DIGESTBOT_CONFIG is set; "
              "run 'digestbot init' to write one here, or pass --config PATH")


def _subscribers(settings: Settings, echo_problems: bool = True) -> tuple[list[Subscriber], list[Problem]]:
    """The good subscribers and the problems of the bad files; a missing or unreadable folder is an error."""
    folder = settings.resolve(settings.subscriptions_dir)
    if folder.is_dir():
        try:
            os.listdir(folder)
        except OSError as e:
            raise ConfigError(f"cannot read this folder ({e.strerror}); let the user digestbot runs as read it, "
                              f"e.g. chmod a+rx {folder}", path=str(folder)) from e
    subs, problems = file_subscribers(settings)
    if not folder.is_dir():
        raise ConfigError(problems[0].message if problems else "no such folder", path=str(folder))
    if echo_problems:
        for p in problems:
            click.echo(f"warning: {p} (this subscriber is skipped)", err=True)
    return subs, problems


class _Cli(click.Group):
    """The command group that catches `BotError` in one place: the message and exit 1, no traceback
    unless -v."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BotError as e:
            _fail(ctx, str(e), e.exit_code)
        except BrokenPipeError:
            raise  # the reader went away (`digestbot history alice | head`): click exits quietly
        except OSError as e:
            # A file digestbot may not read or write: the user's to fix, not a bug.
            what = f"{e.filename}: " if e.filename else ""
            _fail(ctx, f"{what}{e.strerror or e}; check that it exists and that the user digestbot runs as "
                       "may read and write it", 1)


def _fail(ctx: click.Context, message: str, code: int) -> None:
    obj = ctx.obj if isinstance(ctx.obj, Context) else None
    if obj is not None and obj.verbose:
        click.echo(traceback.format_exc().rstrip(), err=True)
    click.echo(f"Error: {message}", err=True)
    ctx.exit(code)


EXIT_CODES = """\b
Exit codes:
  0  everything went fine
  1  a problem you must fix; the message says how (-v shows the traceback)
  2  a usage error: an unknown command or option, a missing argument"""


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="digestbot")
@click.option("--config", "config", metavar="PATH", help="The config file (default: ./digestbot.toml or $DIGESTBOT_CONFIG).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv: debug); -v also shows tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="Only problems: no progress, no summaries.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per log line, for log collectors.")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: int, quiet: bool, log_format: str) -> None:
    """digestbot: new papers from Hugging Face, arXiv and RSS, matched to each subscriber and
    sent by email or Slack on their own schedule.

    \b
    Quick start:
      digestbot init            write a working setup into this folder
      digestbot check           list every configuration problem
      digestbot run --once      fetch everything, send every digest that is due
    """
    if verbose and quiet:
        raise click.UsageError("-v and -q contradict each other; give one of them")
    setup_logging(verbose, quiet, log_format)
    ctx.obj = Context(config, verbose, quiet, log_format)


subscriptions_option = click.option(
    "--subscriptions", metavar="DIR", help="The subscriptions folder (default: the configured one).")


@cli.command()
@click.option("--once", is_flag=True, help="Fetch, send what is due, and exit (for cron); without it, run the scheduler.")
@click.option("--workers", type=click.Choice(["inline", "celery"]), default="inline", show_default=True,
              help="celery: hand each due digest to the `digestbot worker` pool (needs DIGESTBOT_BROKER_URL and PostgreSQL).")
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
    from .ingest import fetch_all
    from .pipeline import run_once

    settings = obj.settings(subscriptions, need_file=True)
    if workers == "celery":
        _run_pool(obj, settings, once)
        return
    if not once:
        from .scheduler import run_scheduler

        run_scheduler(settings)
        return
    console = obj.console
    store = Store(settings.database_url, settings.database_sqlite_synchronous)
    subs, problems = _roster(settings, store)
    try:
        with console.progress("Fetching", len(settings.sources)) as step:
            reports = fetch_all(settings, store, progress=lambda _: step())
        _fetch_summary(console, reports)
        with console.progress("Sending ", len(subs)) as step:
            report = run_once(settings, store, subs, progress=lambda _: step())
    finally:
        store.close()
    for o in report.recovered:
        line = f"{o.subscriber}: re-sent pending digest {o.digest_id}: {o.status}" + (f" ({clean(o.reason)})" if o.reason and o.status != "sent" else "")
        (console.say if o.status == "sent" else click.echo)(line)
    for o in report.outcomes:
        if o.status == "sent":
            console.say(f"{o.subscriber}: sent {o.entries} entr{'y' if o.entries == 1 else 'ies'} to {o.destination}")
        elif o.status in ("empty", "not-due"):
            console.say(f"{o.subscriber}: 0 new entries for {o.subscriber}" + (" (not due yet)" if o.status == "not-due" else ""))
        elif o.status == "skipped":
            console.say(f"{o.subscriber}: skipped ({o.reason})")
        else:
            click.echo(f"{o.subscriber}: {o.status.upper()}: {clean(o.reason)}")
    failed = [o for o in report.outcomes + report.recovered if o.status in ("failed", "pending")]
    _run_summary(console, report.outcomes + report.recovered, len(subs), failed, problems)
    if failed or problems:
        sys.exit(1)


def _run_pool(obj: Context, settings: Settings, once: bool) -> None:
    """`run --workers celery`: this process fetches and dispatches; the workers send."""
    from .ingest import fetch_all
    from .workers import dispatch_tick, require_pool, run_dispatcher

    require_pool(settings)
    if not once:
        run_dispatcher(settings, lambda st: _roster(settings, st)[0], fetch=lambda st: fetch_all(settings, st))
        return
    store = Store(settings.database_url)
    try:
        subs, problems = _roster(settings, store)
        _fetch_summary(obj.console, fetch_all(settings, store))
        r = dispatch_tick(settings, store, subs)
    finally:
        store.close()
    obj.console.say(f"dispatched to the pool: {r.enqueued} digests queued, {r.requeued} stalled ones queued again, "
                    f"{r.empty} with no new entries, {r.skipped} claimed elsewhere, {r.idle} not due")
    if problems:
        sys.exit(1)


def _fetch_summary(console: Console, reports: Sequence[Any]) -> None:
    """One line for all sources; a line of its own for each source that failed."""
    bad = [r for r in reports if r.error]
    good = [r for r in reports if not r.error]
    new, updated, unchanged = (sum(getattr(r, k) for r in good) for k in ("new", "updated", "unchanged"))
    console.say(f"fetched {plural(len(good), 'source')}: {new} new, {updated} updated, {unchanged} unchanged"
                + (f"; {len(bad)} failed" if bad else ""))
    for r in bad:
        click.echo(f"fetch {r.source}: FAILED: {clean(r.error)}")


def _run_summary(console: Console, outcomes: Sequence[Any], total: int, failed: Sequence[Any],
                 problems: Sequence[Problem]) -> None:
    """The closing table: subscribers served, entries sent, failures with their reasons."""
    sent = [o for o in outcomes if o.status == "sent"]
    bad_files = sorted({p.path for p in problems})
    rows = [
        ["subscribers served", f"{len({o.subscriber for o in sent})} of {total + len(bad_files)}"],
        ["entries sent", str(sum(o.entries for o in sent))],
        ["failures", str(len(failed) + len(bad_files))],
    ]
    rows += [[f"  {o.subscriber}", f"{o.status}: {clean(o.reason)}"] for o in failed]
    rows += [[f"  {path}", "skipped: the file has a problem (see the warnings)"] for path in bad_files]
    console.say()
    console.table(rows)


@cli.command()
@click.option("--entries", "paths", multiple=True, required=True, metavar="PATH", help="A feed or HF JSON file; repeat to merge several.")
@subscriptions_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the format ../shared/eval/score.py reads).")
@click.option("--all", "show_all", is_flag=True, help="Every entry, not only the selected ones.")
@click.option("--topics", "topics_file", metavar="PATH", help="Your own topics.toml (default: ./topics.toml if present).")
@click.pass_obj
def match(obj: Context, paths: Sequence[str], subscriptions: str | None, as_json: bool, show_all: bool,
          topics_file: str | None) -> None:
    """Score entries from files against the subscribers and say why; no database, nothing sent.

    \b
    Example:
      digestbot match --entries papers.json --entries cs.LG.xml
      digestbot match --entries papers.json --json --all
    """
    from .match import Matcher
    from .sources.files import read_entries

    settings = obj.settings(subscriptions)
    merged: dict[str, Entry] = {}
    for path in paths:
        found, warnings = read_entries(path)
        for w in warnings:
            click.echo(f"warning: {path}: {w}", err=True)
        for e in found:
            merged[e.id] = _enrich(merged.get(e.id), e)
    entries = list(merged.values())
    subs, _ = _subscribers(settings)
    results = Matcher(topics_file=topics_file).fit(entries).match(entries, subs, unselected=show_all)
    by_id = {e.id: e for e in entries}
    out: dict[str, Any] = {"subscribers": []}
    for sub in subs:
        ranked = [m for m in results.get(sub.id, []) if show_all or m.selected]
        out["subscribers"].append({"id": sub.id, "entries": [
            {"id": m.entry_id, "score": round(m.score, 4), "selected": m.selected, "topic": m.topic,
             "why": list(m.why)} for m in ranked]})
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=1))
        return
    for s in out["subscribers"]:
        n = sum(e["selected"] for e in s["entries"])
        click.echo(f"{s['id']}: {n} selected" + ("" if n else " (no digest: nothing stands out)"))
        for e in s["entries"]:
            mark = "*" if e["selected"] else " "
            topic = f"  [{e['topic']}]" if e["topic"] else ""
            click.echo(f"  {mark} {e['score']:.3f}  {_oneline(by_id[e['id']].title, 80)}{topic}")
            if e["why"]:
                click.echo(f"           why: {_oneline('; '.join(e['why']), 160)}")


def _oneline(text: str, width: int) -> str:
    """Untrusted text on one terminal line: control characters dropped, cut to `width`."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(clean.split())[:width]


def _enrich(old: Entry | None, new: Entry) -> Entry:
    """The same paper read twice: keep one entry, the later one adding what it knows."""
    if old is None:
        return new
    return replace(old, extra={**old.extra, **new.extra},
                   tags=old.tags + tuple(t for t in new.tags if t not in old.tags),
                   authors=old.authors or new.authors, summary=old.summary or new.summary)


@cli.command()
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
        settings = Settings()
    except ConfigError as e:
        problems.append(e)
        settings = Settings()
    if subscriptions:
        settings = replace(settings, subscriptions_dir=Path(subscriptions).resolve())
    subs: list[Subscriber] = []
    try:
        subs, found = _subscribers(settings, echo_problems=False)
        problems.extend(found)
    except ConfigError as e:
        problems.append(e)
    for p in problems:
        click.echo(str(p))
    if problems:
        click.echo(f"{plural(len(problems), 'problem')} found; {plural(len(subs), 'subscriber')} fine.")
        sys.exit(1)
    obj.console.say(f"No problems: {plural(len(settings.sources), 'source')}, {plural(len(subs), 'subscriber')}.")


@cli.command()
@click.argument("subscriber")
@click.argument("entry")
@click.argument("vote", type=click.Choice(["up", "down"]))
@click.pass_obj
def feedback(obj: Context, subscriber: str, entry: str, vote: str) -> None:
    """Record a 👍 (up) or 👎 (down) from SUBSCRIBER on ENTRY; the matcher learns from it.

    \b
    Example:
      digestbot feedback alice arxiv:2401.12345 up
    """
    settings = obj.settings()
    store = Store(settings.database_url, settings.database_sqlite_synchronous)
    try:
        store.record_feedback(subscriber, entry, 1 if vote == "up" else -1, datetime.now(UTC))
    finally:
        store.close()
    click.echo(f"Recorded {'👍' if vote == 'up' else '👎'} from {subscriber} on {entry}.")

def _clean(text: str, limit: int = 200) -> str:
    """Untrusted text (titles, reasons) fit for a terminal: no control characters, one line, capped."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _when(t: datetime | None, zone: str = "UTC") -> str:
    if t is None:
        return "never"
    from zoneinfo import ZoneInfo

    local = t.astimezone(ZoneInfo(zone))
    text = f"{local:%Y-%m-%d %H:%M %Z}"
    return text if zone == "UTC" else f"{text} ({t.astimezone(UTC):%H:%M} UTC)"


@cli.command()
@subscriptions_option
@click.option("--items/--no-items", default=True, help="List the entries of each last digest.")
@click.option("--pool", "pool_only", is_flag=True, help="Only the worker pool: queued, running, pending and failed digests.")
@click.pass_obj
def status(obj: Context, subscriptions: str | None, items: bool, pool_only: bool) -> None:
    """Each subscriber's next and last digest, pending and failed digests, each source's last fetch.

    With a worker pool (DIGESTBOT_BROKER_URL), first the pool: queued, running, pending, failed.

    \b
    Example:
      digestbot status --no-items
    """
    from .slots import next_slot

    settings = obj.settings(subscriptions)
    if settings.broker_url or pool_only:
        _pool_summary(settings)
        if pool_only:
            return
    subs, problems = _subscribers(settings)
    now = datetime.now(UTC)
    store = Store(settings.database_url, settings.database_sqlite_synchronous)
    try:
        click.echo(f"Subscribers ({len(subs)}):")
        for sub in subs:
            click.echo(f"  {sub.id}  {_clean(sub.address)}  \"{sub.schedule}\" {sub.timezone}")
            click.echo(f"    next digest: {_when(next_slot(sub, now), sub.timezone)}")
            last = store.history(sub.id, 1)
            if not last:
                click.echo("    last digest: none yet")
                continue
            row = last[0]
            held = store.digest_items(row.id) if row.status in ("sent", "pending") else []
            detail = {"sent": f"sent {_when(row.sent_at)}", "empty": "nothing new to send",
                      "failed": f"failed: {_clean(row.reason)}", "pending": f"pending: {_clean(row.reason) or 'in flight'}"}
            click.echo(f"    last digest: {_when(row.slot, sub.timezone)}, {detail.get(row.status, row.status)}"
                       + (f", {len(held)} entr{'y' if len(held) == 1 else 'ies'}" if held else ""))
            if items:
                for it in held:
                    click.echo(f"      - {_clean(it.entry.title, 100)}  [{_clean(it.entry.id, 80)}]")
        for state in ("pending", "failed"):
            rows = store.digests_with_status(state)
            click.echo(f"{state.capitalize()} digests ({len(rows)}):")
            for r in rows:
                owner = f", held by {r.owner} until {_when(r.lease_until)}" if state == "pending" and r.owner else ""
                click.echo(f"  {r.id}  {r.channel}, {r.attempts} attempt{'s' if r.attempts != 1 else ''}{owner}"
                           + (f": {_clean(r.reason)}" if r.reason else ""))
        sources = {s.name: s for s in store.source_statuses()}
        click.echo(f"Sources ({len(settings.sources)}):")
        for spec in settings.sources:
            st = sources.get(spec.name)
            if st is None:
                click.echo(f"  {spec.name}  never fetched")
                continue
            counts = ", ".join(f"{v} {k}" for k, v in st.counts.items())
            outcome = f"FAILED: {_clean(st.last_error)} (last success {_when(st.last_success)})" if st.last_error else f"ok ({counts})"
            click.echo(f"  {spec.name}  last fetch {_when(st.last_fetch)}  {outcome}")
    finally:
        store.close()
    if problems:
        click.echo(f"{len(problems)} subscription file{'s' if len(problems) != 1 else ''} with problems; 'digestbot check' lists them.")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="The port to listen on.")
@click.pass_obj
def serve(obj: Context, host: str, port: int) -> None:
    """Serve the web front: subscribe, manage, unsubscribe, 👍/👎 and Slack's buttons.

    Links in digests point at DIGESTBOT_BASE_URL; tokens are signed with DIGESTBOT_SECRET_KEY;
    Slack's requests are checked with SLACK_SIGNING_SECRET.

    \b
    Example (behind a reverse proxy that serves https://digest.example.org):
      DIGESTBOT_BASE_URL=https://digest.example.org DIGESTBOT_SECRET_KEY=… digestbot serve --port 8000
    """
    import uvicorn

    from .web import create_app

    settings = obj.settings()
    app = create_app(settings)  # logs a warning when DIGESTBOT_SECRET_KEY or SLACK_SIGNING_SECRET is unset
    click.echo(f"Serving on http://{host}:{port}/ (links point at {settings.base_url})", err=True)
    # proxy_headers: behind a local reverse proxy, rate limits see the client's address.
    uvicorn.run(app, host=host, port=port, proxy_headers=True, log_level="info")


def _roster(settings: Settings, store: Store) -> tuple[list[Subscriber], list[Problem]]:
    """File subscribers plus web subscribers (bot.roster), with every problem warned about."""
    from .roster import load_roster

    files = _subscribers(settings, echo_problems=False)
    subs, problems = load_roster(settings, store, files)
    for p in problems:
        click.echo(f"warning: {p} (this subscriber is skipped)", err=True)
    return subs, problems


@cli.command()
@click.option("--source", "names", multiple=True, metavar="NAME", help="Fetch only this source; repeat for several.")
@click.pass_obj
def fetch(obj: Context, names: Sequence[str]) -> None:
    """Fetch every configured source into the database and say what each brought.

    Exits 1 when any source failed (the others are still fetched and stored).

    \b
    Example:
      digestbot fetch
      digestbot fetch --source arxiv-lg
    """
    from .ingest import FetchReport, fetch_all

    settings = obj.settings()
    specs = list(settings.sources)
    unknown = sorted(set(names) - {s.name for s in specs})
    if unknown:
        raise click.UsageError(f"no source named {', '.join(map(repr, unknown))}; the sources are "
                               f"{', '.join(s.name for s in specs) or '(none configured)'}")
    if names:
        specs = [s for s in specs if s.name in names]
    if not specs:
        click.echo("No sources configured; add a [[sources]] table to digestbot.toml.")
        return
    if not logging.getLogger().isEnabledFor(logging.INFO):
        # Every error and warning is printed below; without -v, don't log them twice.
        logging.getLogger("bot.ingest").setLevel(logging.ERROR)
    store = Store(settings.database_url, settings.database_sqlite_synchronous)
    try:
        if sys.stderr.isatty():
            bar: Any
            with click.progressbar(length=len(specs), label="Fetching", file=sys.stderr,
                                   item_show_func=lambda r: r.source if r else None) as bar:
                def step(report: FetchReport) -> None:
                    bar.update(1, report)

                reports = fetch_all(settings, store, specs, progress=step)
        else:
            reports = fetch_all(settings, store, specs)
    finally:
        store.close()
    width = max(len(r.source) for r in reports)
    for r in reports:
        if r.error:
            click.echo(f"{r.source:<{width}}  FAILED: {r.error}")
            continue
        note = "  (not modified)" if r.not_modified else ""
        click.echo(f"{r.source:<{width}}  {r.new} new, {r.updated} updated, {r.unchanged} unchanged, 0 errors{note}")
        for w in r.warnings:
            click.echo(f"{'':<{width}}  warning: {w}")
    failed = [r for r in reports if r.error]
    if failed:
        click.echo(f"{len(failed)} of {len(reports)} source{'s' if len(reports) != 1 else ''} failed.", err=True)
        sys.exit(1)


@cli.command()
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
    from .scaffold import scaffold

    written = scaffold(directory)
    for path in written:
        obj.console.say(f"wrote {path}")
    where = "" if directory.resolve() == Path.cwd() else f"cd {directory} && "
    obj.console.say(f"\nNext: {where}digestbot check && digestbot run --once   (digests land in outbox/)")


@cli.command()
@click.argument("subscriber")
@click.option("-n", "--limit", default=10, show_default=True, metavar="N", help="The latest N digests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def history(obj: Context, subscriber: str, limit: int, as_json: bool) -> None:
    """What was sent to SUBSCRIBER, when, and why: the latest digests, newest first.

    \b
    Example:
      digestbot history alice --limit 3
    """
    settings = obj.settings()
    store = Store(settings.database_url, settings.database_sqlite_synchronous)
    try:
        rows = store.history(subscriber, limit=limit)
        items = {r.id: store.digest_items(r.id) for r in rows}
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([{
            "id": r.id, "slot": r.slot.isoformat(), "status": r.status, "channel": r.channel,
            "sent_at": r.sent_at.isoformat() if r.sent_at else None, "attempts": r.attempts,
            "reason": r.reason, "more": r.more, "entries": [
                {"id": i.entry.id, "title": i.entry.title, "url": i.entry.url, "score": round(i.score, 4),
                 "why": list(i.why), "topic": i.topic} for i in items[r.id]]} for r in rows],
            ensure_ascii=False, indent=1))
        return
    if not rows:
        known = (settings.resolve(settings.subscriptions_dir) / f"{subscriber}.toml").is_file()
        if not known:
            raise ConfigError(f"no subscriber {subscriber!r}: nothing in the ledger and no file "
                              f"{settings.subscriptions_dir / (subscriber + '.toml')}; check the name "
                              "(the subscriber id is the file name without .toml)")
        click.echo(f"{subscriber}: nothing sent yet; 'digestbot run --once' sends what is due")
        return
    for r in rows:
        click.echo(_history_head(r, len(items[r.id])))
        for n, item in enumerate(items[r.id], 1):
            click.echo(f"  {n}. {clean(item.entry.title)}")
            click.echo(f"     {clean(item.entry.id)}  score {item.score:.3f}"
                       + (f"  topic {clean(item.topic)}" if item.topic else ""))
            if item.why:
                click.echo(f"     why: {clean('; '.join(item.why))}")


def _history_head(r: Any, count: int) -> str:
    """One digest's line in `history`: its slot, its fate, and where it went."""
    slot = f"{r.slot:%Y-%m-%d %H:%M} UTC"
    if r.status == "sent":
        fate = f"sent {r.sent_at:%Y-%m-%d %H:%M} UTC via {r.channel}, {plural(count, 'entry', 'entries')}"
    elif r.status == "failed":
        fate = f"FAILED via {r.channel}: {clean(r.reason)}"
    elif r.status == "pending":
        fate = f"pending after {plural(r.attempts, 'attempt')}" + (f": {clean(r.reason)}" if r.reason else "")
    else:
        fate = r.status
    more = f" (+{r.more} more not sent: max_items)" if r.more else ""
    return f"{r.id}  slot {slot}  {fate}{more}"


@cli.command()
@click.argument("subscriber")
@click.option("--out", "out", default="preview", show_default=True, metavar="DIR", help="Where to write the files.")
@click.option("--open", "open_html", is_flag=True, help="Open the HTML in a web browser.")
@subscriptions_option
@click.pass_obj
def preview(obj: Context, subscriber: str, out: str, open_html: bool, subscriptions: str | None) -> None:
    """Render SUBSCRIBER's next digest to files (.html, .txt, .json); nothing is sent or recorded.

    \b
    Example:
      digestbot preview alice --open
    """
    from .preview import next_digest, write_preview

    settings = obj.settings(subscriptions)
    db = settings.database_url
    if db.startswith("sqlite:///") and db != "sqlite:///:memory:" and not Path(db[len("sqlite:///"):]).exists():
        raise click.UsageError(f"no database at {db} yet; run 'digestbot run --once' first to fetch entries")
    store = Store(db, settings.database_sqlite_synchronous)
    try:
        subs, _ = _roster(settings, store)
        found = {s.id: s for s in subs}
        if subscriber not in found:
            raise click.UsageError(f"no subscriber {subscriber!r}; the subscribers are: {', '.join(sorted(found)) or 'none'}")
        digest = next_digest(settings, store, found[subscriber], datetime.now(UTC))
    finally:
        store.close()
    paths = write_preview(settings, digest, Path(out))
    click.echo(f"{subscriber}: next digest {digest.id} with {plural(len(digest.items), 'entry', 'entries')}"
               + (f" (+{digest.more} more)" if digest.more else ""))
    for kind in ("html", "txt", "json"):
        click.echo(f"  {paths[kind]}")
    if open_html:
        import webbrowser

        webbrowser.open(paths["html"].resolve().as_uri())


@cli.command()
@click.option("--topics", "topics_file", metavar="PATH", help="Your own topics.toml (default: ./topics.toml if present).")
@click.option("-v", "--vocabulary", "show_vocabulary", is_flag=True, help="Also show each topic's vocabulary.")
@click.pass_obj
def topics(obj: Context, topics_file: str | None, show_vocabulary: bool) -> None:
    """List the research topics subscribers can follow (interests.topics) and digests group by.

    \b
    Example:
      digestbot topics
      digestbot topics --topics my-topics.toml -v

    Add your own in topics.toml next to digestbot.toml:
    \b
      [[topic]]
      slug = "causal-inference"
      name = "Causal inference"
      description = "Causal discovery and effect estimation"
      vocabulary = ["causal", "counterfactual", "treatment effect"]
    """
    from .match.topics import load_topics

    found = load_topics(topics_file)
    width = max(len(t.slug) for t in found)
    for t in found:
        click.echo(f"{t.slug:{width}s}  {t.name}")
        if show_vocabulary:
            click.echo(f"{'':{width}s}    {t.description}")
            click.echo(f"{'':{width}s}    vocabulary: {', '.join(t.vocabulary)}")
    click.echo(f"{len(found)} topics.")


@cli.command()
@click.option("--loglevel", default="INFO", show_default=True, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
              help="The worker's log level.")
@click.pass_obj
def worker(obj: Context, loglevel: str) -> None:
    """Start a Celery worker that sends the digests `run --workers celery` dispatches.

    Needs DIGESTBOT_BROKER_URL and a PostgreSQL DIGESTBOT_DATABASE_URL. Run as many as you need;
    SIGTERM finishes the digest in hand, then stops.

    \b
    Example:
      DIGESTBOT_BROKER_URL=redis://127.0.0.1:6379/0 digestbot worker
    """
    from .workers import start_worker

    start_worker(obj.settings(), loglevel)


def _pool_summary(settings: Settings) -> None:
    """`digestbot status`'s worker-pool section: queued, running, pending and failed digests."""
    from .workers import pool_status

    store = Store(settings.database_url)
    try:
        st = pool_status(settings, store)
    finally:
        store.close()
    click.echo("Worker pool:")
    if not settings.broker_url:
        click.echo("  queued:  no worker pool (DIGESTBOT_BROKER_URL is not set)")
    else:
        click.echo(f"  queued:  {'broker unreachable' if st.queued is None else st.queued} (tasks waiting in {settings.queue!r})")
        click.echo(f"  workers: {'unknown' if st.workers is None else st.workers} answering")
    click.echo(f"  running: {st.running}")
    click.echo(f"  pending: {st.pending} ({st.waiting} waiting for a worker, {st.running} running, {st.stalled} stalled: re-enqueued on the next tick)")
    click.echo(f"  failed:  {st.failed}")
    for row in st.recent_failures:
        click.echo(f"    {row.id}: {_clean(row.reason)}")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: the `digestbot` command (errors are caught in the group, usage errors are click's)."""
    cli.main(args=argv, prog_name="digestbot")
