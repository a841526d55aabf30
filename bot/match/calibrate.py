"""Selection: turn scores into "worth this subscriber's attention", per subscriber, vectorized.

Each subscriber's scores are judged against a background that is always there and always the
same kind of text: the taxonomy's topic texts, the typical documents of the field (the last
`baseline` columns of the reference scores). Nothing is a global score constant:

- the background says where an ordinary text stands for this subscriber (its median) and how far
  ordinary texts spread above that (its upper decile): a broad interest spreads far, a narrow
  one hardly;
- an entry is selected when it stands above the background's median by `spread` times that
  decile gap (it is an outlier of the field, so a quiet day sends nothing) and by at least `lift`
  of the way from the median to the subscriber's best `top_k` entries at hand (a rich day does
  not send its whole tail);
- an entry whose title matches one of the subscriber's own keywords (word-boundary phrase
  match) needs `keyword_relief` decile gaps less above the median (the lift still applies): the
  subscriber named that word and the paper leads with it. Chosen by leave-one-subscriber-out
  over both evaluation sets (`benchmarks/relevance.py`); a match anywhere in the abstract
  lifted F1 a little more but sent on quiet days ("clinical" in a speech paper's abstract).

A keyword list spanning several topics carries their vocabulary, so their topic texts match it
by construction: they are left out of its background's median and decile (`own`), or a broad
list (three subjects) would be judged against its own subjects and send nothing.

The background does not depend on what the store holds, so the same day's entries select the
same papers whether the store holds that one day or a month, and a feed that is all on the
subscriber's subject still sends its matches. The three constants (`spread`, `lift`,
`keyword_relief`) were chosen by leave-one-subscriber-out on the evaluation sets
(`benchmarks/relevance.py` prints that choice and its figures). A logistic model of P(relevant)
over the same standings and keyword hits, trained across subscribers and thresholded by
leave-one-out, selected worse (F1 0.764 full, 0.747 keywords-only, against 0.770 / 0.750), and
so did (F1 full / keywords-only, leave-one-out where fitted): that model's probabilities with the
cut maximizing each subscriber's expected F1 (0.727-0.781 / 0.728-0.758; the best sends on 38
of 145 quiet days); a bar from the offered entries' own median and MAD (at most 0.780 / 0.750);
a cut at the largest gap of each subscriber's sorted scores (at most 0.760 / 0.736); a lift to
the best, 2nd or 5th best entry instead of the best three (0.767-0.777 / 0.738-0.751); a wider
background scale (`reach` 0.1-0.15: 0.753 / 0.751 held out). A lower bar (1.75 gaps) for the
rest of a day that has one clear hit selected a little better over the sets' whole lists (0.780
/ 0.750, leave-one-out 15 of 15) but worse day by day (0.639 against 0.654 with a one-day
store) and swung more with the store (keywords-only 217 against 222 of 224 days): not kept.
The best cut of each subscriber's ranking lies anywhere from 0.9 to 5.2 background gaps above
its median (F1 0.852 / 0.825 if it were known), and none of these statistics predicts where.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Calibration:
    """The selection rule's constants (the same for every subscriber; the statistics are theirs)."""

    lift: float = 0.4  # at least this share of the way from the median to the day's best
    top_k: int = 3  # the day's best: the mean of this many top entries
    spread: float = 2.0  # and this many upper-decile gaps above the median
    quantile: float = 0.9  # the upper decile
    reach: float = 0.075  # the background's scale: at least this share of its best text's lead
    floor: float = 0.0  # an absolute minimum score (0: none)
    own_topics: bool = True  # leave the subscriber's own topics out of its background
    keyword_relief: float = 0.5  # an entry whose title has one of the keywords: this many gaps less


def background(
    ref: np.ndarray, baseline: int, cal: Calibration, own: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the background's median and scale (the topic columns, else every column).

    The scale is how far ordinary texts spread above the median (the upper-decile gap), but at
    least `reach` of the way to the best-matching background text: for a narrow interest the
    ordinary texts hardly spread, and the one text on the subject says what standing out means.
    """
    part = ref[:, ref.shape[1] - baseline :] if baseline else ref
    if own is not None and baseline and own.any():
        # The subscriber's own topics are its subject, not the background it stands out of.
        med, high = _quantiles_without(part, own & (own.sum(axis=1, keepdims=True) < baseline), cal)
    else:
        med, high = np.quantile(part, [0.5, cal.quantile], axis=1)
    scale = np.maximum(high - med, cal.reach * (part.max(axis=1) - med))
    return med, np.maximum(scale, 1e-6)


def _quantiles_without(
    part: np.ndarray, leave: np.ndarray, cal: Calibration
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the median and `cal.quantile` of `part` without the `leave` cells (vectorized).

    What np.nanquantile computes (linear interpolation), without its per-row Python loop: the
    left-out cells sort last as +inf, and each row's positions come from its own count.
    """
    ordered = np.sort(np.where(leave, np.inf, part), axis=1)
    last = (part.shape[1] - leave.sum(axis=1) - 1)[:, None]  # each row's last kept position
    out = []
    for q in (0.5, cal.quantile):
        pos = last * q
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, last)
        a = np.take_along_axis(ordered, lo, axis=1)
        b = np.take_along_axis(ordered, hi, axis=1)
        out.append((a + (pos - lo) * (b - a)).ravel())
    return out[0], out[1]


def bars(
    ref: np.ndarray,
    cal: Calibration = Calibration(),
    baseline: int = 0,
    offered: int | None = None,
    own: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the score threshold, and the one for entries whose title matches the row's keywords.

    The last `baseline` columns of the reference scores `ref` (subscribers × entries) are the
    topic texts, the background; without them (baseline 0) the entries themselves are. The first
    `offered` columns (default: all but the background) are the entries at hand, whose best
    `top_k` the lift is measured to.
    """
    n = ref.shape[1] - baseline if offered is None else offered
    if n <= 0:
        none = np.full(ref.shape[0], np.inf, np.float32)
        return none, none
    med, scale = background(ref, baseline, cal, own if cal.own_topics else None)
    k = min(cal.top_k, n)
    top = np.partition(ref[:, :n], n - k, axis=1)[:, n - k :].mean(axis=1)
    lift = med + cal.lift * (top - med)
    out = []
    for spread in (cal.spread, cal.spread - cal.keyword_relief):
        thr = np.maximum(np.maximum(lift, med + spread * scale), cal.floor)
        out.append(thr.astype(np.float32))
    return out[0], out[1]


def select(
    scores: np.ndarray,
    thr: np.ndarray,
    allowed: np.ndarray,
    forced: np.ndarray,
    max_items: np.ndarray,
    keyword: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The selected mask (subscribers × entries): above threshold or forced, allowed, at most max_items each.

    `keyword` lowers the bar for the cells where an entry matches one of the row's keywords.

    `allowed` is False where an entry is excluded or was already delivered: that always wins.
    Forced entries (followed authors) are ranked before the others when the cap applies.
    """
    chosen = scores > thr[:, None]  # strictly: a profile with nothing to match selects nothing
    if keyword is not None:  # (rows, columns) of entries matching a row's keyword, and its bar
        r, c, bar = keyword
        chosen[r, c] |= scores[r, c] > bar[r]
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
