"""The matrix core alone (`python benchmarks/match.py --cli 0 --plan 0 --core 100000`).

`Matcher.select` — profiles, one sparse product per chunk, selection, no reasons — at 10k, 30k
and N subscribers over synthetic entries, and for reference the arxiv-sanity-lite way (one
`LinearSVC` fitted per subscriber on the entries' tf-idf features) on 1,000 of them, extrapolated.
"""

from __future__ import annotations

import gc
import resource
import time

import numpy as np
from _synthetic import generate

from bot.match import Matcher
from bot.models import Entry, Subscriber


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_svm(matcher: Matcher, entries: list[Entry], subs: list[Subscriber], n: int) -> float:
    """Seconds for the arxiv-sanity-lite way on `n` subscribers: a LinearSVC per subscriber."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    from bot.match.features import entry_text

    x = matcher.space.transform(entry_text(e) for e in entries)
    rng = np.random.default_rng(3)
    t0 = time.perf_counter()
    for _ in subs[:n]:
        y = np.zeros(len(entries), int)
        y[rng.choice(len(entries), size=5, replace=False)] = 1  # the papers this subscriber tagged
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LinearSVC(class_weight="balanced", C=0.1, max_iter=1000, tol=1e-6).fit(x, y)
        np.argsort(-clf.decision_function(x))[:10]
    return time.perf_counter() - t0


def run_core(n_subs: int, n_entries: int, svm: int = 1000) -> None:
    """Print the core's time at 10k, 30k and `n_subs`, and the LinearSVC reference."""
    entries, subs = generate(n_entries, n_subs)
    gc.collect()
    gc.freeze()  # the generated data is long-lived: keep the cyclic GC from rescanning it
    matcher = Matcher().fit(entries)
    last = 0.0
    for n in [k for k in (10_000, 30_000) if k < n_subs] + [n_subs]:
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        sel = matcher.select(entries, subs[:n])
        last, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"core: {n:>7,} subscribers × {len(entries)} entries selected in {last:5.2f}s "
            f"(cpu {cpu:5.2f}s), {len(sel.scores):,} selected; peak {peak_mb():.0f} MB"
        )
    per_svm = reference_svm(matcher, entries, subs, svm) / svm
    print(
        f"  reference, one LinearSVC per subscriber: {per_svm * n_subs:.0f}s for {n_subs:,} "
        f"(extrapolated from {svm:,}) → {per_svm * n_subs / last:.0f}× slower than the core"
    )
