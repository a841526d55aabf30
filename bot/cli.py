"""The `digestbot` command: the one place that prints, catches `BotError` and exits."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import Settings, load_settings
from .errors import BotError, Problem, ProblemsFound
from .models import Entry, Subscriber
from .store import Store
from .subscriptions import load_subscriptions


class Context:
    """What every command shares: the settings, loaded once."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self._settings: Settings | None = None

    def settings(self, subscriptions: str | None = None) -> Settings:
        """The settings, with --subscriptions applied."""
        if self._settings is None:
            self._settings = load_settings(self.config)
        if subscriptions:
            return replace(self._settings, subscriptions_dir=Path(subscriptions).resolve())
        return self._settings


def _known_topics() -> set[str] | None:
    from .match import known_topics

    return known_topics()


def _subscribers(settings: Settings, echo_problems: bool = True) -> tuple[list[Subscriber], list[Problem]]:
    folder = settings.resolve(settings.subscriptions_dir)
    subs, problems = load_subscriptions(folder, _known_topics())
    if echo_problems:
        for p in problems:
            click.echo(f"warning: {p} (this subscriber is skipped)", err=True)
    return subs, problems


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digestbot")
@click.option("--config", "config", metavar="PATH", help="The config file (default: ./digestbot.toml or $DIGESTBOT_CONFIG).")
@click.option("-v", "--verbose", count=True, help="More logging; -v also shows tracebacks.")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: int) -> None:
    """digestbot: new papers from Hugging Face, arXiv and RSS, matched to each subscriber and
    sent by email or Slack on their own schedule.

    \b
    Quick start:
      digestbot run --once      fetch everything, send every digest that is due
      digestbot check           list every configuration problem
    """
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = Context(config)


subscriptions_option = click.option(
    "--subscriptions", metavar="DIR", help="The subscriptions folder (default: the configured one).")


@cli.command()
@click.option("--once", is_flag=True, help="Fetch, send what is due, and exit (for cron); without it, run the scheduler.")
@subscriptions_option
@click.pass_obj
def run(obj: Context, once: bool, subscriptions: str | None) -> None:
    """Fetch every source and send every digest that is due.

    \b
    Example (from cron, every hour):
      0 * * * *  cd /srv/digestbot && digestbot run --once
    """
    from .ingest import fetch_all
    from .pipeline import run_once

    settings = obj.settings(subscriptions)
    if not once:
        from .scheduler import run_scheduler

        run_scheduler(settings)
        return
    subs, problems = _subscribers(settings)
    store = Store(settings.database_url)
    try:
        for r in fetch_all(settings, store):
            if r.error:
                click.echo(f"fetch {r.source}: FAILED: {r.error}")
            else:
                click.echo(f"fetch {r.source}: {r.new} new, {r.updated} updated, {r.unchanged} unchanged"
                           + (" (not modified)" if r.not_modified else ""))
        report = run_once(settings, store, subs)
    finally:
        store.close()
    for o in report.recovered:
        click.echo(f"{o.subscriber}: re-sent pending digest {o.digest_id}: {o.status}" + (f" ({o.reason})" if o.reason and o.status != "sent" else ""))
    for o in report.outcomes:
        if o.status == "sent":
            click.echo(f"{o.subscriber}: sent {o.entries} entr{'y' if o.entries == 1 else 'ies'} to {o.destination}")
        elif o.status in ("empty", "not-due"):
            click.echo(f"{o.subscriber}: 0 new entries for {o.subscriber}" + (" (not due yet)" if o.status == "not-due" else ""))
        elif o.status == "skipped":
            click.echo(f"{o.subscriber}: skipped ({o.reason})")
        else:
            click.echo(f"{o.subscriber}: {o.status.upper()}: {o.reason}")
    failed = [o for o in report.outcomes + report.recovered if o.status in ("failed", "pending")]
    if failed or problems:
        sys.exit(1)


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
    problems: list[Problem] = []
    try:
        settings = obj.settings(subscriptions)
    except ProblemsFound as e:
        problems.extend(e.problems)
        settings = Settings()
        if subscriptions:
            settings = replace(settings, subscriptions_dir=Path(subscriptions))
    subs, found = _subscribers(settings, echo_problems=False)
    problems.extend(found)
    for p in problems:
        click.echo(str(p))
    if problems:
        click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found; {len(subs)} subscriber{'s' if len(subs) != 1 else ''} fine.")
        sys.exit(1)
    click.echo(f"No problems: {len(settings.sources)} source{'s' if len(settings.sources) != 1 else ''}, {len(subs)} subscriber{'s' if len(subs) != 1 else ''}.")


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
    store = Store(settings.database_url)
    try:
        store.record_feedback(subscriber, entry, 1 if vote == "up" else -1, datetime.now(UTC))
    finally:
        store.close()
    click.echo(f"Recorded {'👍' if vote == 'up' else '👎'} from {subscriber} on {entry}.")


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


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI, turning `BotError` into a message and exit code 1."""
    try:
        cli.main(args=argv, prog_name="digestbot", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except BotError as e:
        if logging.getLogger().isEnabledFor(logging.INFO):
            raise
        click.echo(f"Error: {e}", err=True)
        sys.exit(e.exit_code)
