"""Ingest speed: parse, normalize and store 10,000 feed entries, next to feedparser's bare parse.

The reference is `feedparser.parse(bytes)` of the same bytes in the same run (defaults; digestbot
asks feedparser not to resolve URIs inside HTML, whose text alone it keeps); digestbot's whole
ingest (`parse_feed` + `Store.upsert_entries` into a fresh SQLite file) should reach at least 50 %
of that rate. Run: python benchmarks/ingest.py [--entries 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

import feedparser

from bot.sources.feeds import parse_feed
from bot.store import Store

WORDS = [
    "quantization",
    "transformer",
    "diffusion",
    "attention",
    "sparse",
    "low-bit",
    "kernel",
    "inference",
    "token",
    "cache",
    "graph",
    "policy",
    "reward",
    "robust",
    "calibration",
    "latent",
    "benchmark",
    "retrieval",
    "agent",
    "memory",
]


def make_feed(n: int, seed: int = 1) -> bytes:
    """An arXiv-listing-like RSS 2.0 feed with `n` items: announce types, LaTeX, HTML, authors."""
    rnd = random.Random(seed)
    items = []
    for i in range(n):
        title = " ".join(rnd.choice(WORDS) for _ in range(9)).capitalize()
        abstract = " ".join(rnd.choice(WORDS) for _ in range(120))
        kind = rnd.choice(("new", "new", "new", "cross", "replace"))
        authors = ", ".join(
            f"Author{rnd.randrange(10_000)} Name{rnd.randrange(100)}"
            for _ in range(rnd.randint(1, 8))
        )
        pid = f"2611.{i:05d}"
        items.append(
            f"<item><title>{escape(title)} with $x&lt;y$</title><link>https://arxiv.org/abs/{pid}</link>"
            f"<description>arXiv:{pid}v1 Announce Type: {kind} \nAbstract: {escape(abstract)} &lt;b&gt;bold&lt;/b&gt;</description>"
            f'<guid isPermaLink="false">oai:arXiv.org:{pid}v1</guid><category>cs.LG</category><category>cs.AI</category>'
            f"<pubDate>Thu, 26 Nov 2026 00:00:00 -0500</pubDate><arxiv:announce_type>{kind}</arxiv:announce_type>"
            f"<dc:creator>{escape(authors)}</dc:creator></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0"><channel><title>cs.LG updates on arXiv.org</title>'
        "<link>http://rss.arxiv.org/rss/cs.LG</link><description>bench</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def best_of(repeat: int, run) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Print entries per second for feedparser alone and for digestbot's whole ingest."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    content = make_feed(args.entries)
    print(
        f"feed: {args.entries:,} entries, {len(content) / 1e6:.1f} MB; best of {args.repeat} runs"
    )

    def bare() -> None:
        assert len(feedparser.parse(content).entries) == args.entries

    def bare_as_used() -> None:
        assert len(feedparser.parse(content, resolve_relative_uris=False).entries) == args.entries

    with tempfile.TemporaryDirectory() as tmp:
        runs = iter(range(args.repeat))

        def ingest() -> None:
            store = Store(f"sqlite:///{Path(tmp) / f'bench{next(runs)}.db'}")
            try:
                entries, _ = parse_feed(content, "https://rss.arxiv.org/rss/cs.LG", "arxiv-lg")
                new, _, _ = store.upsert_entries(entries)
                assert new == args.entries
            finally:
                store.close()

        # Interleaved, so that load from other processes falls on both alike.
        reference = as_used = ours = float("inf")
        for _ in range(args.repeat):
            reference = min(reference, best_of(1, bare))
            as_used = min(as_used, best_of(1, bare_as_used))
            ours = min(ours, best_of(1, ingest))
    ref_rate, our_rate = args.entries / reference, args.entries / ours
    print(
        f"reference  feedparser.parse(bytes)            {ref_rate:9,.0f} entries/s  ({reference:.2f} s)"
    )
    print(
        f"(info)     feedparser as digestbot calls it     {args.entries / as_used:9,.0f} entries/s  ({as_used:.2f} s)"
    )
    print(
        f"digestbot  parse + normalize + store (SQLite) {our_rate:9,.0f} entries/s  ({ours:.2f} s)"
    )
    verdict = "meets" if our_rate >= 0.5 * ref_rate else "MISSES"
    print(f"ratio {our_rate / ref_rate:.0%} of the bare parse rate ({verdict} the 50 % target)")


if __name__ == "__main__":
    main()
