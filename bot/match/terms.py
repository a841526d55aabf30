"""The terms of an entry that weigh most for a subscriber, for many (subscriber, entry) pairs at
once: the "terms: …" reason of `explain`, in array passes instead of one pass per pair.

A term weighs its tf-idf in the entry times its weight in the profile: the profile's own words
(the query) plus, for a profile with a topic part, its topics' vocabulary (`explain._pair_terms`
is the one-pair definition). The weights are the same float32 products, except for a profile
with two or more topics, whose sum this pass makes in float64: a pair whose candidates are
closer than float32 rounding could move them is marked unsure, and `explain` finds its terms
the one-pair way. Equal weights rank in the entry's term order (columns ascending).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .classifier import EntryBatch
from .features import TextSpace
from .profiles import Profiles
from .topics import TopicIndex

COMMON_IDF = 1.0 + float(np.log(10.0))  # idf of a term in 10% of the documents
_PAIRS = 4096  # pairs per array pass (bounds the memory: their entries' terms)
_ULP = 2.0**-23  # float32's relative spacing: the one-pair computation's rounding step


class TopTerms:
    """What every pass of one matching run shares: the entries' terms, the topics' vocabulary."""

    def __init__(
        self, batch: EntryBatch, prof: Profiles, index: TopicIndex, space: TextSpace
    ) -> None:
        self.prof = prof
        self.x = sorted_rows(batch.X)  # `explain` reads X as it is: canonical, so the same
        self.x_keys = keys(self.x)
        self.dense = index.dense_vectors()
        # Terms in more than about a tenth of the corpus ("model", "large") explain nothing.
        self.common = space.idf >= COMMON_IDF
        self.vocabulary = self.common & (self.dense != 0).any(axis=0)  # the topics' terms
        self.slack = (len(index.topics) + 8) * _ULP  # float32 rounding of a k-topic sum, bounded

    def __call__(
        self, rows: np.ndarray, ents: np.ndarray, n_terms: int
    ) -> tuple[list[list[int]], np.ndarray]:
        """Per pair (subscriber row `rows[i]`, entry row `ents[i]`), the columns of the entry's
        `n_terms` terms that weigh most, best first, and whether the pair is unsure."""
        best: list[list[int]] = [[] for _ in range(len(rows))]
        unsure = np.zeros(len(rows), bool)
        if not len(rows):
            return best, unsure
        lo_r, hi_r = int(rows.min()), int(rows.max()) + 1
        ctx = _Terms(self, lo_r, hi_r)
        rows = rows - lo_r
        for lo in range(0, len(rows), _PAIRS):
            part = np.arange(lo, min(lo + _PAIRS, len(rows)))
            _rank(*ctx.plain(part, rows, ents), n_terms, best, unsure, in_order=True)
            _rank(*ctx.topical(part, rows, ents), n_terms, best, unsure)
        return best, unsure


def sorted_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """`m` with each row's columns ascending (itself when they are)."""
    return m if m.has_sorted_indices else m.sorted_indices()


def keys(m: sp.csr_matrix) -> np.ndarray:
    """row · columns + column of every stored value: ascending when `m`'s rows are sorted."""
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    keys: np.ndarray = rows * m.shape[1] + m.indices
    return keys


def find(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Whether each key is among `sorted_keys`."""
    if not len(sorted_keys):
        return np.zeros(len(keys), bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    found: np.ndarray = sorted_keys[at] == keys
    return found


def spans(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(which span, position) of every position in the spans [start, start + length)."""
    which = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(int(lengths.sum()), dtype=np.int64)
    pos += np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return which, pos


_Found = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # pair, column, weight, error


class _Terms:
    """The entries' terms and the profiles' weights of them (subscriber rows lo..hi of one
    chunk), looked up for many pairs at once."""

    def __init__(self, shared: TopTerms, lo: int, hi: int) -> None:
        self.x, self.x_keys, self.dense = shared.x, shared.x_keys, shared.dense
        self.common, self.vocabulary, self.slack = shared.common, shared.vocabulary, shared.slack
        self.query = sorted_rows(shared.prof.query[lo:hi])
        self.q_keys = keys(self.query)
        self.topic_weight = shared.prof.topic_weight[lo:hi]
        self.topic_l2 = shared.prof.topic_l2[lo:hi]

    def _in_entries(
        self, which: np.ndarray, cols: np.ndarray, ents: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Whether entry `ents[which[i]]` has term `cols[i]`, and its tf-idf there (float32)."""
        keys = ents[which] * self.x.shape[1] + cols
        at = np.minimum(np.searchsorted(self.x_keys, keys), max(len(self.x_keys) - 1, 0))
        found = self.x_keys[at] == keys if len(self.x_keys) else np.zeros(len(keys), bool)
        return found, self.x.data[at[found]] if len(self.x_keys) else np.zeros(0, np.float32)

    def _query_terms(
        self, rows: np.ndarray, ents: np.ndarray, extra: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pair, column, tf-idf in the entry, query weight) of each pair's query terms that its
        entry has (only `common` ones, and without the `extra` columns when given)."""
        q = self.query
        which, pos = spans(q.indptr[rows], q.indptr[rows + 1] - q.indptr[rows])
        cols = q.indices[pos].astype(np.int64)
        ok = self.common[cols] if extra is None else self.common[cols] & ~extra[cols]
        which, pos, cols = which[ok], pos[ok], cols[ok]
        found, vals = self._in_entries(which, cols, ents)
        return which[found], cols[found], vals, q.data[pos[found]]

    def _query_weights(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The query's weight of term `cols[i]` for subscriber row `rows[i]` (0 where none)."""
        q = self.query
        out = np.zeros(len(cols), np.float32)
        if not len(rows):
            return out
        a, b = q.indptr[rows.min()], q.indptr[rows.max() + 1]  # these rows' keys only
        keys = self.q_keys[a:b]
        if len(keys):
            want = rows * q.shape[1] + cols
            at = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
            found = keys[at] == want
            out[found] = q.data[a:b][at[found]]
        return out

    def plain(self, part: np.ndarray, rows: np.ndarray, ents: np.ndarray) -> _Found:
        """Pairs whose profile has no topic part: the query's terms found in the entry, weighed
        as `reasons` does (float32 products; exact, so the error is zero). One elementwise
        product of the pairs' entry rows and query rows (sparse, each row's terms ascending)."""
        pairs = part[self.topic_weight[rows[part]] == 0]
        both = sp.csr_matrix(self.x[ents[pairs]].multiply(self.query[rows[pairs]]))
        both.sort_indices()
        which = np.repeat(np.arange(len(pairs)), np.diff(both.indptr))
        cols = both.indices.astype(np.int64)
        contrib = both.data  # float32 x · q, as `reasons` has it
        keep = (contrib > 0) & self.common[cols]
        n = int(keep.sum())
        return pairs[which][keep], cols[keep], contrib[keep].astype(np.float64), np.zeros(n)

    def topical(self, part: np.ndarray, rows: np.ndarray, ents: np.ndarray) -> _Found:
        """Pairs whose profile has a topic part: the entry's terms that are the query's or the
        topics' (the others weigh 0). With one topic (or none) the weights are `reasons`'
        float32 steps exactly; with more, a float64 sum and a bound on how far `reasons`'
        float32 sum (in BLAS's order) may be from it."""
        pairs = part[self.topic_weight[rows[part]] != 0]
        x, r, e = self.x, rows[pairs], ents[pairs]
        which, pos = spans(x.indptr[e], x.indptr[e + 1] - x.indptr[e])
        ok = self.vocabulary[x.indices[pos]]
        which, pos = which[ok], pos[ok]
        cols = x.indices[pos].astype(np.int64)
        q = self._query_weights(r[which], cols)
        w2, c2, v2, q2 = self._query_terms(r, e, self.vocabulary)
        which = np.concatenate([which, w2])
        cols = np.concatenate([cols, c2])
        vals = np.concatenate([x.data[pos], v2])
        q = np.concatenate([q, q2])
        tw = self.topic_weight[r][which]
        weights = self.topic_l2[r]
        holder, topic = np.nonzero(weights)  # each pair's topics, ascending
        count = np.bincount(holder, minlength=len(pairs))
        k = count[which]
        # One topic or none: a · V in float32, then `reasons`' float32 steps.
        single = np.zeros(len(pairs), np.int64)
        single[holder[count[holder] == 1]] = topic[count[holder] == 1]
        one = (k == 1).astype(np.float32)
        a1 = weights[np.arange(len(pairs)), single][which] * one
        qd = q + tw * (a1 * self.dense[single[which], cols])
        contrib = (vals * qd).astype(np.float64)  # (× the `common` mask, all 1 here)
        err = np.zeros(len(cols))
        many = k > 1
        if many.any():  # float64 sums over the pair's topics, with their rounding bound
            acc, mag = self._sums(holder, topic, weights, which[many], cols[many], len(pairs))
            q64, tw64 = q[many].astype(np.float64), tw[many].astype(np.float64)
            v64 = vals[many].astype(np.float64)
            contrib[many] = v64 * (q64 + tw64 * acc)
            err[many] = self.slack * v64 * (np.abs(q64) + np.abs(tw64) * mag)
        keep = contrib + err > 0
        return pairs[which][keep], cols[keep], contrib[keep], err[keep]

    def _sums(
        self,
        holder: np.ndarray,
        topic: np.ndarray,
        weights: np.ndarray,
        which: np.ndarray,
        cols: np.ndarray,
        n_pairs: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Σ_t a_t·V[t, col] and Σ_t |a_t|·V[t, col] over each element's pair's topics, float64."""
        count = np.bincount(holder, minlength=n_pairs)
        slot = np.arange(len(holder)) - np.repeat(np.cumsum(count) - count, count)
        tp = np.zeros((n_pairs, int(count.max())), np.int64)
        wp = np.zeros(tp.shape, np.float64)
        tp[holder, slot] = topic
        wp[holder, slot] = weights[holder, topic]
        acc = np.zeros(len(cols))
        mag = np.zeros(len(cols))
        for j in range(tp.shape[1]):
            v = self.dense[tp[which, j], cols].astype(np.float64)
            w = wp[which, j]
            acc += w * v
            mag += np.abs(w) * v
        return acc, mag


def _rank(
    pair: np.ndarray,
    cols: np.ndarray,
    c: np.ndarray,
    err: np.ndarray,
    n_terms: int,
    best: list[list[int]],
    unsure: np.ndarray,
    in_order: bool = False,
) -> None:
    """Each pair's candidates best first, equal weights by column: the top `n_terms` into
    `best`; `unsure` where the order of the top `n_terms` + 1, or the sign of one of the top
    `n_terms`, is within the error.

    `in_order`: the candidates come by pair and column already, with positive float32 weights
    (`plain`'s): one stable sort on an integer key (pair, then the weight's bits, which order
    positive floats) does what the three-key sort does."""
    if in_order:
        key = pair.astype(np.int64) << 32
        key |= 0x7FFFFFFF - c.astype(np.float32).view(np.int32).astype(np.int64)
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((cols, -c, pair))
    pair, cols, c, err = pair[order], cols[order], c[order], err[order]
    n = len(pair)
    first = np.ones(n, bool)
    first[1:] = pair[1:] != pair[:-1]
    rank = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))
    top = rank <= n_terms
    pair, cols, c, err, rank = pair[top], cols[top], c[top], err[top], rank[top]
    unsure[pair[(rank < n_terms) & (c <= err) & (err > 0)]] = True
    margin = err[:-1] + err[1:]
    close = (pair[1:] == pair[:-1]) & (rank[:-1] < n_terms) & (margin > 0)
    unsure[pair[:-1][close & (c[:-1] - c[1:] <= margin)]] = True
    pick = rank < n_terms
    for p, col in zip(pair[pick].tolist(), cols[pick].tolist(), strict=True):
        best[p].append(col)
