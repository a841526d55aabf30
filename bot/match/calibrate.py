"""Selection: turn scores into "worth this subscriber's attention", per subscriber, vectorized.

A score is judged against the subscriber's own score distribution over the reference set (the
entries offered now, plus recent corpus entries when few are offered): an entry is selected when
it stands out from the typical entry (the median) by at least `lift` of the way to what the
subscriber's best recent matches score (the mean of the top `top_k`), and clears an absolute
`floor`, and by at least `margin` above the median. So a day without strong matches sends little or nothing, a rich day sends more, up to
`max_items`; a subscriber whose field is everywhere (a high median) needs more to be selected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Calibration:
    """The selection rule's constants (fixed, not fitted per subscriber)."""

    lift: float = 0.27
    top_k: int = 3
    floor: float = 0.2
    margin: float = 0.1  # and always this far above the median: a flat day selects nothing


_SAMPLE = 127  # the median is taken over at most this many reference entries, evenly spread


def _median(ref: np.ndarray) -> np.ndarray:
    sample = ref if ref.shape[1] <= _SAMPLE else ref[:, np.linspace(0, ref.shape[1] - 1, _SAMPLE).astype(int)]
    m = sample.shape[1]
    if m % 2:  # odd: the middle value (one selection instead of two)
        med: np.ndarray = np.partition(sample, m // 2, axis=1)[:, m // 2]
        return med
    part = np.partition(sample, [m // 2 - 1, m // 2], axis=1)
    mid: np.ndarray = (part[:, m // 2 - 1] + part[:, m // 2]) / 2
    return mid


def thresholds(ref: np.ndarray, cal: Calibration = Calibration(), baseline: int = 0) -> np.ndarray:
    """One score threshold per row (subscriber) of the reference scores `ref` (subscribers × entries).

    The last `baseline` columns are the topic texts, the typical documents of the field. The
    typical score is the entries' median, pulled halfway down to the topics' median when that
    is lower: so a feed (or a day, or a first run with a handful of entries) where every entry
    is on the subscriber's subject still sends its matches, while a busy field still asks more.
    """
    entries = ref[:, : ref.shape[1] - baseline] if baseline else ref
    n = entries.shape[1]
    if n == 0:
        return np.full(ref.shape[0], np.inf, np.float32)
    k = min(cal.top_k, n)
    top = np.partition(entries, n - k, axis=1)[:, n - k:].mean(axis=1)
    med = _median(entries)
    if baseline:
        field = _median(ref[:, ref.shape[1] - baseline:])
        med = np.minimum(med, (med + field) / 2)
    thr: np.ndarray = np.maximum(cal.floor, med + np.maximum(cal.margin, cal.lift * (top - med))).astype(np.float32)
    return thr


def select(scores: np.ndarray, thr: np.ndarray, allowed: np.ndarray, forced: np.ndarray,
           max_items: np.ndarray) -> np.ndarray:
    """The selected mask (subscribers × entries): above threshold or forced, allowed, at most max_items each.

    `allowed` is False where an entry is excluded or was already delivered: that always wins.
    Forced entries (followed authors) are ranked before the others when the cap applies.
    """
    chosen = scores >= thr[:, None]
    chosen |= forced
    chosen &= allowed
    counts = chosen.sum(axis=1)
    over = np.flatnonzero(counts > max_items)
    if over.size:  # only subscribers with more selected entries than they want: keep their best
        sub = np.where(chosen[over], scores[over] + 10.0 * forced[over], -np.inf)
        order = np.argsort(-sub, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(sub.shape[1])[None, :], axis=1)
        chosen[over] &= ranks < max_items[over][:, None]
    return chosen
