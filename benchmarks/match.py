#!/usr/bin/env python3
"""Matching at scale: 100,000 subscribers × 1,000 entries, scored and selected in one pass.

Usage (from the project root):  python benchmarks/match.py [--subscribers 100000] [--entries 1000]

Everything is synthetic, generated here from a made-up vocabulary (seeded, so runs compare):
entries are abstracts on 300 latent themes with Zipf-distributed background words; subscribers
describe a theme in a sentence, name 1–3 of its keywords, and some follow a topic, an author or
exclude a word. Printed: the time to build profiles and to score + select at 10k, 30k and 100k
subscribers (it should grow linearly), the process's peak memory, and for reference the
arxiv-sanity-lite way — one `LinearSVC` fitted per subscriber on the entries' tf-idf features —
timed on 1,000 subscribers in the same run and extrapolated, with the ratio.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.match import Matcher
from bot.match.topics import load_topics
from bot.models import Entry, Interests, Subscriber

SYLLABLES = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]


def vocabulary(rng: random.Random, n: int) -> list[str]:
    """`n` distinct made-up words of 2–4 syllables."""
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def generate(n_entries: int, n_subs: int, seed: int = 7) -> tuple[list[Entry], list[Subscriber]]:
    """Synthetic entries and subscribers (see the module docstring)."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    words = vocabulary(rng, 20_000)
    background = words[:15_000]
    zipf = 1.0 / np.arange(1, len(background) + 1) ** 1.05
    zipf /= zipf.sum()
    themes = [words[15_000 + 16 * t : 15_000 + 16 * (t + 1)] for t in range(300)]
    authors = [f"{rng.choice(words).title()} {rng.choice(words).title()}" for _ in range(3000)]
    slugs = [t.slug for t in load_topics()]
    entries = []
    for i in range(n_entries):
        theme = themes[i % len(themes)]
        bg = nrng.choice(len(background), size=140, p=zipf)
        body = [background[j] for j in bg] + [rng.choice(theme) for _ in range(35)]
        rng.shuffle(body)
        title = " ".join(rng.sample(theme, 3) + [background[j] for j in bg[:4]]).capitalize()
        entries.append(
            Entry(
                id=f"bench:{i}",
                title=title,
                summary=" ".join(body) + ".",
                authors=tuple(rng.sample(authors, 3)),
            )
        )
    subs = []
    for s in range(n_subs):
        theme = themes[rng.randrange(len(themes))]
        desc = " ".join(rng.sample(theme, 8) + [background[j] for j in nrng.choice(2000, size=6)])
        keywords = tuple(rng.sample(theme, rng.randint(1, 3)))
        if rng.random() < 0.3:
            keywords += (" ".join(rng.sample(theme, 2)),)
        interests = Interests(
            description=desc if rng.random() < 0.8 else "",
            keywords=keywords,
            exclude=(rng.choice(background[:5000]),) if rng.random() < 0.05 else (),
            topics=(rng.choice(slugs),) if rng.random() < 0.2 else (),
            authors=(rng.choice(authors),) if rng.random() < 0.02 else (),
        )
        subs.append(
            Subscriber(
                id=f"s{s}",
                email=f"s{s}@example.org",
                max_items=rng.choice([5, 10, 20]),
                interests=interests,
            )
        )
    return entries, subs


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_svm(matcher: Matcher, entries: list[Entry], subs: list[Subscriber], n: int) -> float:
    """Seconds for the arxiv-sanity-lite way on `n` subscribers: a LinearSVC per subscriber."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    from bot.match.features import entry_text

    X = matcher.space.transform(entry_text(e) for e in entries)
    rng = np.random.default_rng(3)
    t0 = time.perf_counter()
    for _ in subs[:n]:
        y = np.zeros(len(entries), int)
        y[rng.choice(len(entries), size=5, replace=False)] = 1  # the papers this subscriber tagged
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LinearSVC(class_weight="balanced", C=0.1, max_iter=1000, tol=1e-6).fit(X, y)
        scores = clf.decision_function(X)
        np.argsort(-scores)[:10]
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument("--svm", type=int, default=1000, help="subscribers for the LinearSVC reference")
    args = ap.parse_args()
    t0 = time.perf_counter()
    entries, subs = generate(args.entries, args.subscribers)
    print(
        f"generated {len(entries)} entries, {len(subs)} subscribers in {time.perf_counter() - t0:.1f}s "
        f"(peak so far {peak_mb():.0f} MB)"
    )
    gc.collect()
    gc.freeze()  # the generated data is long-lived: keep the cyclic GC from rescanning it
    t0 = time.perf_counter()
    matcher = Matcher().fit(entries)
    print(
        f"fit on {len(entries)} entries: {time.perf_counter() - t0:.2f}s, {len(matcher.space.terms)} terms"
    )
    sizes = [n for n in (10_000, 30_000, 100_000) if n < args.subscribers] + [args.subscribers]
    last = 0.0
    for n in sizes:
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        sel = matcher.select(entries, subs[:n])
        last, cpu = time.perf_counter() - t0, time.process_time() - c0
        per = np.bincount(sel.subscribers, minlength=n)
        print(
            f"{n:>7,} subscribers × {len(entries)} entries: scored and selected in {last:5.2f}s (cpu {cpu:5.2f}s) "
            f"({last / n * 1e6:5.1f} µs/subscriber); selected {len(sel.scores):,} "
            f"(per subscriber: median {int(np.median(per))}, none for {np.mean(per == 0):.0%}); peak {peak_mb():.0f} MB"
        )
        print("          of which " + ", ".join(f"{k} {v:.2f}s" for k, v in sel.seconds.items()))
    t0 = time.perf_counter()
    shown = matcher.match(entries, subs[:1000], unselected=False)
    t_explain = time.perf_counter() - t0
    n_items = sum(len(v) for v in shown.values())
    print(
        f"  with reasons (Match objects) for 1,000 subscribers: {t_explain:.2f}s, {n_items} items"
    )
    print(
        f"machine load now: {' '.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min) on {os.cpu_count()} cores"
    )
    t_svm = reference_svm(matcher, entries, subs, args.svm)
    per_svm = t_svm / args.svm
    print(
        f"reference, arxiv-sanity-lite (LinearSVC per subscriber): {args.svm:,} subscribers in {t_svm:.2f}s "
        f"→ {per_svm * args.subscribers:.0f}s for {args.subscribers:,} (extrapolated)"
    )
    print(
        f"ratio: {per_svm * args.subscribers / last:.0f}× faster than one LinearSVC per subscriber; "
        f"peak memory {peak_mb():.0f} MB"
    )


if __name__ == "__main__":
    main()
