"""Why an entry was chosen: matched keywords, topics, the terms that weighed most, liked papers.

`reasons_for` explains every selected (subscriber, entry) pair of a run in a few array passes;
`reasons` explains one pair the straightforward way. They give the same reasons: where the
vectorized pass cannot be sure of the order of two terms (a tie, or a gap within the rounding of
the one-pair computation), that pair's terms are found the one-pair way (`_pair_terms`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .classifier import EntryBatch
from .features import TextSpace
from .feedback import FeedbackModel
from .profiles import Profiles
from .topics import TopicIndex

AUTHOR = "by an author you follow"
_COMMON_IDF = 1.0 + float(np.log(10.0))  # idf of a term in 10% of the documents
_PAIRS = 4096  # pairs per array pass of `_top_terms` (bounds its memory: their entries' terms)
_ULP = 2.0**-23  # float32's relative spacing: the one-pair computation's rounding step


def reasons(
    batch: EntryBatch,
    prof: Profiles,
    index: TopicIndex,
    fb: FeedbackModel,
    space: TextSpace,
    terms: np.ndarray,
    r: int,
    e: int,
    forced: bool,
    n_terms: int = 3,
) -> tuple[str, ...]:
    """The reasons subscriber row `r` gets entry row `e`, strongest kind first."""
    why: list[str] = [AUTHOR] if forced else []
    hit_cols = batch.hits.indices[batch.hits.indptr[e] : batch.hits.indptr[e + 1]]
    kw = prof.keywords
    own = set(kw.indices[kw.indptr[r] : kw.indptr[r + 1]].tolist())
    why += [f"keyword: {prof.labels[prof.phrases[c]]}" for c in hit_cols if c in own]
    t = int(batch.main_topic[e])
    if t >= 0 and prof.topic_raw[r, t] > 0:
        why.append(f"topic: {index.names[t]}")
    best = _pair_terms(batch, prof, index, space, r, e, n_terms)
    if best:
        why.append("terms: " + ", ".join(space.display(str(terms[c])) for c in best))
    if r in fb.liked:
        why += _liked(batch, fb, r, e)
    return tuple(why)


def _pair_terms(
    batch: EntryBatch,
    prof: Profiles,
    index: TopicIndex,
    space: TextSpace,
    r: int,
    e: int,
    n_terms: int,
) -> list[int]:
    """The columns of entry row `e`'s `n_terms` terms that weigh most for subscriber row `r`:
    the entry's terms weighted by the profile (its own words plus its topics' vocabulary)."""
    x = batch.X
    cols = x.indices[x.indptr[e] : x.indptr[e + 1]]
    if not cols.size:
        return []
    vals = x.data[x.indptr[e] : x.indptr[e + 1]]
    q = prof.query
    q_cols = q.indices[q.indptr[r] : q.indptr[r + 1]]  # sorted: the space's rows are canonical
    q_vals = q.data[q.indptr[r] : q.indptr[r + 1]]
    qd = np.zeros(cols.size, np.float32)
    if q_cols.size:
        pos = np.minimum(np.searchsorted(q_cols, cols), q_cols.size - 1)
        found = q_cols[pos] == cols
        qd[found] = q_vals[pos[found]]
    topics = np.flatnonzero(prof.topic_l2[r]) if prof.topic_weight[r] else np.zeros(0, np.int64)
    if topics.size:
        qd += prof.topic_weight[r] * (
            prof.topic_l2[r, topics] @ index.dense_vectors()[topics][:, cols]
        )
    # Terms in more than about a tenth of the corpus ("model", "large") explain nothing.
    contrib = vals * qd * (space.idf[cols] >= _COMMON_IDF)
    return [int(cols[i]) for i in np.argsort(-contrib)[:n_terms] if contrib[i] > 0]


def reasons_for(
    batch: EntryBatch,
    prof: Profiles,
    index: TopicIndex,
    fb: FeedbackModel,
    space: TextSpace,
    rows: np.ndarray,
    ents: np.ndarray,
    forced: np.ndarray,
    n_terms: int = 3,
) -> list[tuple[str, ...]]:
    """`reasons` for every pair (subscriber row `rows[i]`, entry row `ents[i]`, `forced[i]`).

    The keyword and topic reasons are set lookups; the terms are found for all pairs together
    (`_top_terms`), and the liked papers for the few subscribers who liked any.
    """
    rows = np.asarray(rows, np.int64)
    ents = np.asarray(ents, np.int64)
    if not rows.size:
        return []
    terms = space.terms
    keywords = _keyword_reasons(batch, prof, rows, ents)
    t = batch.main_topic[ents]
    has_topic = (t >= 0) & (prof.topic_raw[rows, np.maximum(t, 0)] > 0)
    topic_label = [f"topic: {name}" for name in index.names]
    best, unsure = _top_terms(batch, prof, index, space, rows, ents, n_terms)
    shown: dict[int, str] = {}

    def display(col: int) -> str:
        text = shown.get(col)
        if text is None:
            text = shown[col] = space.display(str(terms[col]))
        return text

    out: list[tuple[str, ...]] = []
    for i, (r, e) in enumerate(zip(rows.tolist(), ents.tolist(), strict=True)):
        why = [AUTHOR] if forced[i] else []
        why += keywords[i]
        if has_topic[i]:
            why.append(topic_label[t[i]])
        top = _pair_terms(batch, prof, index, space, r, e, n_terms) if unsure[i] else best[i]
        if top:
            why.append("terms: " + ", ".join(map(display, top)))
        if r in fb.liked:
            why += _liked(batch, fb, r, e)
        out.append(tuple(why))
    return out


def _liked(batch: EntryBatch, fb: FeedbackModel, r: int, e: int) -> list[str]:
    """ "like “title”": the paper subscriber row `r` liked that is nearest entry row `e`, if near."""
    liked = fb.liked[r]
    sims = (liked[1] @ batch.X[e].T).toarray().ravel()
    i = int(np.argmax(sims))
    return [f"like “{liked[0][i].title}”"] if sims[i] >= 0.2 else []


def _keyword_reasons(
    batch: EntryBatch, prof: Profiles, rows: np.ndarray, ents: np.ndarray
) -> list[list[str]]:
    """Per pair, "keyword: …" for each of the subscriber's keywords the entry holds, in the
    entry's phrase order (`reasons`' order)."""
    both = prof.keywords[rows].multiply(batch.hits[ents]).tocsr()
    both.sort_indices()  # `reasons` lists them in the entry's (sorted) phrase order
    labels = [f"keyword: {prof.labels[p]}" for p in prof.phrases]
    ptr, cols = both.indptr.tolist(), both.indices.tolist()
    return [[labels[c] for c in cols[ptr[i] : ptr[i + 1]]] for i in range(len(rows))]


def _top_terms(
    batch: EntryBatch,
    prof: Profiles,
    index: TopicIndex,
    space: TextSpace,
    rows: np.ndarray,
    ents: np.ndarray,
    n_terms: int,
) -> tuple[list[list[int]], np.ndarray]:
    """Per pair, the columns of the entry's `n_terms` terms that weigh most for the subscriber,
    and whether the pair must be explained by `reasons` itself.

    A term weighs its tf-idf in the entry times its weight in the profile: the profile's own
    words (the query) and, for a profile that has them, its topics' vocabulary. Without topics
    the weights are the very float32 products `reasons` makes, so only a tie is unsure (its
    order is `argsort`'s). With topics this pass sums in float64, `reasons` in float32: a pair
    is unsure where two candidates, or a candidate and zero, are closer than that rounding.
    """
    best: list[list[int]] = [[] for _ in range(len(rows))]
    unsure = np.zeros(len(rows), bool)
    lo_r, hi_r = int(rows.min()), int(rows.max()) + 1
    query = prof.query[lo_r:hi_r]
    ctx = _Terms(
        batch.X,
        query,
        rows - lo_r,
        prof.topic_weight[lo_r:hi_r],
        prof.topic_l2[lo_r:hi_r],
        index,
        space,
    )
    topical = prof.topic_weight[rows] != 0
    for lo in range(0, len(rows), _PAIRS):
        part = np.arange(lo, min(lo + _PAIRS, len(rows)))
        pieces = [ctx.plain(part[~topical[part]], ents), ctx.topical(part[topical[part]], ents)]
        pair, cols, c, err = (np.concatenate(a) for a in zip(*pieces, strict=True))
        _rank(pair, cols, c, err, n_terms, best, unsure)
        tied = part[~topical[part] & unsure[part]]
        for p, top in ctx.settle(tied, ents, n_terms).items():
            best[p], unsure[p] = top, False
    return best, unsure


def _keys(m: sp.csr_matrix) -> np.ndarray:
    """row · columns + column of every stored value, ascending for a canonical CSR matrix."""
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    keys: np.ndarray = rows * m.shape[1] + m.indices
    return keys


def _spans(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(which span, position) of every position in the spans [start, start + length)."""
    which = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(int(lengths.sum()), dtype=np.int64)
    pos += np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return which, pos


_Found = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # pair, column, weight, error


class _Terms:
    """The entries' terms and the profiles' weights of them, looked up for many pairs at once."""

    def __init__(
        self,
        x: sp.csr_matrix,
        query: sp.csr_matrix,
        rows: np.ndarray,
        topic_weight: np.ndarray,
        topic_l2: np.ndarray,
        index: TopicIndex,
        space: TextSpace,
    ) -> None:
        self.x, self.query, self.rows = x, query, rows
        self.topic_weight, self.topic_l2, self.index = topic_weight, topic_l2, index
        self.in_order = bool(x.has_sorted_indices)  # positions in a row are `reasons`' positions
        if not self.in_order:  # lookups need sorted rows; `reasons` reads X as it is
            x = x.sorted_indices()
        self.x_keys, self.x_data = _keys(x), x.data
        # the last `plain` pairs' found terms (pair, position in X, weight), for `settle`
        self.found: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.q_keys = _keys(query) if query.has_sorted_indices else _keys(query.sorted_indices())
        self.q_data = query.data if query.has_sorted_indices else query.sorted_indices().data
        self.common = space.idf >= _COMMON_IDF
        self.slack = (len(index.topics) + 8) * _ULP

    @staticmethod
    def _lookup(keys: np.ndarray, sorted_keys: np.ndarray, data: np.ndarray) -> np.ndarray:
        """The value stored under each key (0 where none is)."""
        out = np.zeros(len(keys), data.dtype)
        if len(sorted_keys):
            at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
            found = sorted_keys[at] == keys
            out[found] = data[at[found]]
        return out

    def plain(self, pairs: np.ndarray, ents: np.ndarray) -> _Found:
        """Pairs whose profile has no topic part: the query's terms found in the entry, weighed
        exactly as `reasons` does (float32 products), so the error is zero."""
        q, rows = self.query, self.rows[pairs]
        which, pos = _spans(q.indptr[rows], q.indptr[rows + 1] - q.indptr[rows])
        cols = q.indices[pos].astype(np.int64)
        keys = ents[pairs][which] * self.x.shape[1] + cols
        at = np.minimum(np.searchsorted(self.x_keys, keys), max(len(self.x_keys) - 1, 0))
        hit = self.x_keys[at] == keys if len(self.x_keys) else np.zeros(len(keys), bool)
        vals = np.where(hit, self.x_data[at] if len(self.x_keys) else 0, 0).astype(np.float32)
        contrib = vals * q.data[pos]  # float32, as `reasons` has it
        self.found = (pairs[which][hit], at[hit], contrib[hit] * self.common[cols][hit])
        keep = (contrib > 0) & self.common[cols]
        return (
            pairs[which][keep],
            cols[keep],
            contrib[keep].astype(np.float64),
            np.zeros(keep.sum()),
        )

    def topical(self, pairs: np.ndarray, ents: np.ndarray) -> _Found:
        """Pairs whose profile has a topic part: every term of the entry, weighed in float64,
        with a bound on how far `reasons`' float32 steps may be from it."""
        x, rows = self.x, self.rows[pairs]
        e = ents[pairs]
        which, pos = _spans(x.indptr[e], x.indptr[e + 1] - x.indptr[e])
        cols = x.indices[pos].astype(np.int64)
        vals = x.data[pos].astype(np.float64)
        r = rows[which]
        qv = self._lookup(r * self.query.shape[1] + cols, self.q_keys, self.q_data)
        qv = qv.astype(np.float64)
        acc = np.zeros(len(cols))
        mag = np.zeros(len(cols))
        weights = self.topic_l2[rows]
        holder, topic = np.nonzero(weights)  # each pair's topics, ascending
        if len(holder):
            count = np.bincount(holder, minlength=len(pairs))
            slot = np.arange(len(holder)) - np.repeat(np.cumsum(count) - count, count)
            tp = np.zeros((len(pairs), int(count.max())), np.int64)
            wp = np.zeros(tp.shape, np.float64)
            tp[holder, slot] = topic
            wp[holder, slot] = weights[holder, topic]
            dense = self.index.dense_vectors()
            for j in range(tp.shape[1]):
                v = dense[tp[which, j], cols].astype(np.float64)
                w = wp[which, j]
                acc += w * v
                mag += np.abs(w) * v
        tw = self.topic_weight[r].astype(np.float64)
        use = self.common[cols]
        contrib = vals * (qv + tw * acc) * use
        err = self.slack * vals * (np.abs(qv) + np.abs(tw) * mag) * use
        keep = contrib + err > 0
        return pairs[which][keep], cols[keep], contrib[keep], err[keep]

    def settle(self, pairs: np.ndarray, ents: np.ndarray, n_terms: int) -> dict[int, list[int]]:
        """The top terms of `plain` pairs with a tie, as `reasons` orders them: its very weights
        (zero where the query has no term) sorted by the same `argsort`, pair by pair."""
        if self.found is None or not self.in_order:
            return {}
        holder, at, weight = self.found
        x = self.x
        out: dict[int, list[int]] = {}
        for p in pairs.tolist():
            a, b = np.searchsorted(holder, [p, p + 1])
            lo, hi = x.indptr[ents[p]], x.indptr[ents[p] + 1]
            contrib = np.zeros(hi - lo, np.float32)
            contrib[at[a:b] - lo] = weight[a:b]
            cols = x.indices[lo:hi]
            out[p] = [int(cols[i]) for i in np.argsort(-contrib)[:n_terms] if contrib[i] > 0]
        return out


def _rank(
    pair: np.ndarray,
    cols: np.ndarray,
    c: np.ndarray,
    err: np.ndarray,
    n_terms: int,
    best: list[list[int]],
    unsure: np.ndarray,
) -> None:
    """Each pair's candidates best first: the top `n_terms` into `best`, `unsure` where the
    order of the top `n_terms` + 1, or the sign of one of the top `n_terms`, is not certain."""
    order = np.lexsort((-c, pair))
    pair, cols, c, err = pair[order], cols[order], c[order], err[order]
    n = len(pair)
    first = np.ones(n, bool)
    first[1:] = pair[1:] != pair[:-1]
    rank = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))
    top = rank <= n_terms
    pair, cols, c, err, rank = pair[top], cols[top], c[top], err[top], rank[top]
    unsure[pair[(rank < n_terms) & (c <= err) & (err > 0)]] = True
    close = (pair[1:] == pair[:-1]) & (rank[:-1] < n_terms) & (c[:-1] - c[1:] <= err[:-1] + err[1:])
    unsure[pair[:-1][close]] = True
    pick = rank < n_terms
    for p, col in zip(pair[pick].tolist(), cols[pick].tolist(), strict=True):
        best[p].append(col)
