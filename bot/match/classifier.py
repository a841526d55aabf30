"""The scorer: entries × subscribers scores in chunks of subscribers, all sparse/dense matrix work.

score = cos(entry, profile after pseudo-relevance feedback), where the entry side is the abstract
plus a weighted title and the profile is description + keywords + topic vocabulary, then
+ a small bonus per matched keyword, + topic evidence (the entry's topic vocabulary and topic
distribution against the subscriber's topics), + the feedback model's adjustment.

Pseudo-relevance feedback (Rocchio) moves each profile towards the centroid of its top `prf_k`
entries; it is done without building the new profiles, through the entries' Gram matrix.
Arrays are subscribers × entries (a row per subscriber), so per-subscriber reductions run on
contiguous memory; the topic parts are one small dense product, the text part one sparse one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..models import Entry
from .features import TextSpace, entry_text, phrase_incidence
from .feedback import FeedbackModel
from .profiles import Profiles, _author_key
from .topics import TopicIndex


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    """The blend of the score's parts (fixed, data-independent defaults)."""

    title: float = 0.5  # weight of title similarity next to the whole text's
    keyword: float = 0.05  # bonus for the keywords an entry matches (saturating)
    vocabulary: float = 0.2  # the subscriber's topics' vocabulary found in the entry
    topic: float = 0.3  # the entry's topic distribution on the subscriber's topics
    prf_k: int = 3  # pseudo-relevance feedback: top entries whose centroid joins the profile
    prf_weight: float = 0.6
    facet: float = 0.4  # the best single facet's similarity (a clause of the description, a keyword)
    prf_trust: float = 0.3  # top entries scoring below this move the profile proportionally less


class EntryBatch:
    """The entries of one matching run as features; the first `offered` columns may be selected."""

    def __init__(self, entries: Sequence[Entry], offered: int, space: TextSpace, index: TopicIndex,
                 profiles: Profiles, w: ScoreWeights) -> None:
        self.entries = list(entries)
        self.offered = offered
        texts = [entry_text(e) for e in entries]
        self.X = space.transform(texts)
        XT = space.transform(e.title for e in entries)
        Z = sp.csr_matrix(self.X + w.title * XT)  # the entry side: whole text plus its title again
        self.Zt = sp.csr_matrix(Z.T)  # terms × entries
        self.zz = (Z @ Z.T).toarray().astype(np.float32)  # entries × entries
        n_own = len(profiles.phrases)
        hits = phrase_incidence(texts, profiles.phrases + index.phrases)
        self.hits_t = sp.csr_matrix(hits[:, :n_own].T)  # own phrases × entries
        dist, evidence = index.entry_topics(self.X, sp.csr_matrix(hits[:, n_own:]))
        self.topic_dist = dist
        # Entry-side topic features, one row block per score part (see `score_chunk`).
        self.topic_side = np.ascontiguousarray(np.hstack([(Z @ index.vectors.T).toarray(), evidence, dist]).T, dtype=np.float32)
        self.main_topic = np.where(dist.max(axis=1) > 0, dist.argmax(axis=1), -1) if len(index.topics) else np.full(len(entries), -1)
        col = {a: i for i, a in enumerate(profiles.authors)}
        rows, cols = [], []
        for r, e in enumerate(entries):
            for a in e.authors:
                c = col.get(_author_key(a))
                if c is not None:
                    rows.append(c)
                    cols.append(r)
        self.authors_t = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(col), len(entries)))
        self.hits = sp.csr_matrix(hits[:, :n_own])  # entries × own phrases, for reasons

    def delivered_mask(self, ids: Sequence[str], delivered: Mapping[str, set[str]] | None) -> sp.csr_matrix:
        """subscribers × offered entries: 1 where the entry was already delivered to the subscriber."""
        where = {e.id: i for i, e in enumerate(self.entries[: self.offered])}
        rows, cols = [], []
        for r, sid in enumerate(ids):
            for eid in (delivered or {}).get(sid, ()):
                c = where.get(eid)
                if c is not None:
                    rows.append(r)
                    cols.append(c)
        return sp.csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(len(ids), self.offered))


def top_k(a: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest values (k small): k argmax passes, cheaper than argpartition."""
    rows = np.arange(a.shape[0])
    out = np.empty((a.shape[0], k), np.int64)
    saved = np.empty((a.shape[0], k), a.dtype)
    for j in range(k):
        out[:, j] = a.argmax(axis=1)
        saved[:, j] = a[rows, out[:, j]]
        a[rows, out[:, j]] = -np.inf
    for j in range(k):
        a[rows, out[:, j]] = saved[:, j]
    return out


def score_chunk(batch: EntryBatch, prof: Profiles, fb: FeedbackModel, lo: int, hi: int,
                w: ScoreWeights, baseline: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (subscribers lo..hi × all batch entries), the forced mask and the excluded mask.

    The last `baseline` entries are reference texts (the topics): scored, never fed back.
    """
    n = batch.zz.shape[0]
    inv = prof.inv_norm[lo:hi, None]
    t_l2, t_max = prof.topic_l2[lo:hi], prof.topic_max[lo:hi]
    # Z·p: the text part (sparse) plus the topic-vocabulary part of the profile (dense, small).
    sz = (prof.query_n[lo:hi] @ batch.Zt).toarray()
    topic_side = np.hstack([prof.topic_weight * inv * t_l2, w.vocabulary * t_l2, w.topic * t_max]).astype(np.float32)
    T = t_l2.shape[1]
    sz += topic_side[:, :T] @ batch.topic_side[:T]
    bonus = topic_side[:, T:] @ batch.topic_side[T:]
    hits = (prof.keywords[lo:hi] @ batch.hits_t).tocoo()
    bonus[hits.row, hits.col] += w.keyword * (1.0 - np.exp(-hits.data))
    if w.facet:
        a, b = prof.facet_ptr[lo], prof.facet_ptr[hi]
        per = (prof.facets[a:b] @ batch.Zt).tocoo()  # facets × entries, sparse
        group = np.repeat(np.arange(hi - lo), np.diff(prof.facet_ptr[lo:hi + 1]))  # facet row → subscriber
        best = np.zeros((hi - lo) * n, np.float32)
        np.maximum.at(best, group[per.row] * n + per.col, per.data)
        best *= w.facet
        bonus += best.reshape(hi - lo, n)
    scores = sz + bonus
    k = min(w.prf_k, n - baseline)
    if k > 0 and w.prf_weight:
        rows = np.arange(hi - lo)[:, None]
        top = top_k(scores[:, : n - baseline], k)  # c × k, real entries only
        c_norm = np.sqrt(np.maximum(batch.zz[top[:, :, None], top[:, None, :]].sum(axis=(1, 2)), 1e-12)) / k
        z_c = batch.zz[top[:, 0]]
        for j in range(1, k):
            z_c += batch.zz[top[:, j]]
        z_c /= (k * c_norm)[:, None]  # Z·ĉ
        p_c = sz[rows, top].mean(axis=1) / c_norm  # p·ĉ
        trust = np.clip(scores[rows, top].mean(axis=1) / w.prf_trust, 0.0, 1.0)  # a quiet day: no drift
        b = (w.prf_weight * trust * (prof.inv_norm[lo:hi] > 0)).astype(np.float32)
        den = np.sqrt(1 + 2 * b * p_c + b * b)
        z_c *= (b / den)[:, None]
        sz *= (1 / den)[:, None]
        scores = sz
        scores += z_c
        scores += bonus
    if fb.has_votes(lo, hi):
        scores += (fb.rows[lo:hi] @ batch.Zt).toarray()
    forced = (prof.follows[lo:hi] @ batch.authors_t).toarray() > 0
    excluded = (prof.excludes[lo:hi] @ batch.hits_t).toarray() > 0
    return scores, forced, excluded
