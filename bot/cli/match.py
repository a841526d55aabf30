"""The matcher without a database: `match` (score files against the subscribers) and `topics`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import click

from .._console import plural
from ..models import Match, Subscriber
from ..text import oneline
from ._context import Context, subscribers, subscriptions_option


@click.command()
@click.option(
    "--entries",
    "paths",
    multiple=True,
    required=True,
    metavar="PATH",
    help="A feed or HF JSON file; repeat to merge several.",
)
@subscriptions_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (the format ../shared/eval/score.py reads)."
)
@click.option("--all", "show_all", is_flag=True, help="Every entry, not only the selected ones.")
@click.option(
    "--topics",
    "topics_file",
    metavar="PATH",
    help="Your own topics.toml, for matching and the subscribers' topics (default: topics.toml "
    "next to digestbot.toml, if present).",
)
@click.pass_obj
def match(
    obj: Context,
    paths: Sequence[str],
    subscriptions: str | None,
    as_json: bool,
    show_all: bool,
    topics_file: str | None,
) -> None:
    """Score entries from files against the subscribers and say why; no database, nothing sent.
    A subscriber file that is skipped is named on stderr, and the exit code is 1.

    \b
    Example:
      digestbot match --entries papers.json --entries cs.LG.xml
      digestbot match --entries papers.json --json --all
    """
    from ..ingest import read_entry_files
    from ..match import Matcher

    settings = obj.settings(subscriptions)
    if topics_file:  # the subscribers' topics are checked against these too
        settings = replace(settings, topics_path=Path(topics_file))
    entries = read_entry_files(
        paths, warn=lambda path, w: click.echo(f"warning: {path}: {w}", err=True)
    )
    subs, skipped = subscribers(settings)
    results = (
        Matcher(topics_file=settings.topics_file)
        .fit(entries)
        .match(entries, subs, unselected=show_all)
    )
    if as_json:
        _write_json(_scored(subs, results, show_all), sys.stdout)
    else:
        _write_text(subs, results, show_all, {e.id: e.title for e in entries})
    if skipped:  # each named on stderr already, with its fix
        files = plural(len({p.path for p in skipped}), "subscriber file")
        click.echo(f"{files} skipped (see the warnings); fix and run match again", err=True)
        sys.exit(1)


def _write_text(
    subs: Sequence[Subscriber],
    results: Mapping[str, Sequence[Match]],
    show_all: bool,
    titles: Mapping[str, str],
) -> None:
    """`match`'s text: per subscriber, how many were selected, and each entry's score and why."""
    for s in _scored(subs, results, show_all):
        n = sum(e["selected"] for e in s["entries"])
        click.echo(f"{s['id']}: {n} selected" + ("" if n else " (no digest: nothing stands out)"))
        for e in s["entries"]:
            mark = "*" if e["selected"] else " "
            topic = f"  [{e['topic']}]" if e["topic"] else ""
            click.echo(f"  {mark} {e['score']:.3f}  {oneline(titles[e['id']], 80)}{topic}")
            if e["why"]:
                click.echo(f"           why: {oneline('; '.join(e['why']), 160)}")


def _scored(
    subs: Sequence[Subscriber], results: Mapping[str, Sequence[Match]], show_all: bool
) -> Iterator[dict[str, Any]]:
    """Each subscriber's ranked entries with score, topic and why, one subscriber at a time."""
    for sub in subs:
        ranked = [m for m in results.get(sub.id, []) if show_all or m.selected]
        yield {
            "id": sub.id,
            "entries": [
                {
                    "id": m.entry_id,
                    "score": round(m.score, 4),
                    "selected": m.selected,
                    "topic": m.topic,
                    "why": list(m.why),
                }
                for m in ranked
            ],
        }


def _write_json(scored: Iterable[dict[str, Any]], out: TextIO) -> None:
    """`match --json`'s object, `{"subscribers": [...]}`, written one subscriber per line.

    Each subscriber is encoded on its own (by the C encoder: no indent) and written at once,
    so 10,000 subscribers never make one huge string.
    """
    out.write('{"subscribers": [')
    out.writelines(
        ("\n" if n == 0 else ",\n") + json.dumps(s, ensure_ascii=False)
        for n, s in enumerate(scored)
    )
    out.write("\n]}\n")
    out.flush()


@click.command()
@click.option(
    "--topics",
    "topics_file",
    metavar="PATH",
    help="Your own topics.toml (default: topics.toml next to digestbot.toml, if present).",
)
@click.option(
    "-v", "--vocabulary", "show_vocabulary", is_flag=True, help="Also show each topic's vocabulary."
)
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
    from ..match.topics import load_topics

    found = load_topics(topics_file or obj.settings().topics_file)
    width = max(len(t.slug) for t in found)
    for t in found:
        click.echo(f"{t.slug:{width}s}  {t.name}")
        if show_vocabulary:
            click.echo(f"{'':{width}s}    {t.description}")
            click.echo(f"{'':{width}s}    vocabulary: {', '.join(t.vocabulary)}")
    click.echo(f"{len(found)} topics.")
