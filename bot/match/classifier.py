"""The scorer: entries × subscribers scores in chunks of subscribers, all sparse/dense matrix work.

score = cos(entry, profile after pseudo-relevance feedback), where the entry side is the entry's
text (its title twice and abstract, plus HF's ai_keywords and ai_summary when present) and the
profile is description + keywords (+ the taxonomy's vocabulary for a keyword-only profile), then
+ the best single facet's similarity (a clause of the description or one keyword), + topic
evidence for keyword-only profiles, + the feedback model's adjustment (votes, before the
pseudo-relevance step so they steer it).

Pseudo-relevance feedback (Rocchio) moves each profile towards the centroid of its top `prf_k`
entries, each weighted by how far it stands out of the background; it is done without building
the new profiles, through the entries' Gram matrix. Then each offered entry's score moves a little
towards the mean of its `smooth_k` most similar offered entries (a paper whose neighbours all
match is more likely on the subject than a lone lexical hit). Arrays are subscribers × entries (a row per
subscriber), so per-subscriber reductions run on contiguous memory; the topic parts are one
small dense product, the text part one sparse one.

What each part adds was measured on the evaluation sets (`benchmarks/relevance.py`): the
taxonomy's vocabulary helps keyword-only profiles and hurts described ones on subscribers it was
not written for, so it is kept for the former only; an extra title vector and a per-keyword
bonus did not help and are off (their weights stay, at 0). Variants of the pseudo-relevance step
did not help either and are not kept: a term-selective (RM3-style) centroid — its 10 to 150
heaviest terms, or the terms two feedback entries share — ranked worse (full profiles nDCG@10
0.889–0.924, MAP 0.845–0.868, against 0.924 / 0.872) and took 3.3 times the core's time; more
feedback entries, equal weights, a second round or a diverse (MMR) feedback set moved full
profiles by at most +0.006 (mostly one subscriber's top ten) and lowered keywords-only
nDCG@10; a sum over facets instead of the best one, and a latent-semantic (LSA) blend, did no
better. Even fed the labelled relevant entries themselves as its feedback set, the step reaches
only nDCG@10 0.933, MAP 0.880 on full profiles: what is left is in the representation, not in
which entries feed back. Other scoring functions fused with the cosine (by score in background
gaps, or by reciprocal rank) did no better: BM25 (nDCG@10 ≤ 0.931, MAP ≤ 0.871), a Dirichlet
query likelihood (0.931 / 0.864), the share of the query's idf mass present (0.930 / 0.864), a
title-only match (0.933 / 0.870); each lowered keywords-only. Entries read with their rarer
words weighed up where a described profile meets them (√tf × idf^1.25) rank the two sets'
whole lists better (0.937 / 0.882; leave-one-out 0.932 / 0.881) but not a day's or a week's
(day by day nDCG@10 0.935 against 0.936, week by week 0.877 against 0.880), and selecting in
that reading stays silent on fewer quiet days (140 against 143 of 145): not kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..models import Entry
from .calibrate import Calibration, background
from .features import TextSpace, entry_text, phrase_incidence
from .feedback import FeedbackModel
from .profiles import Profiles, _author_key
from .topics import TopicIndex


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    """The blend of the score's parts (fixed, data-independent defaults)."""

    title: float = (
        0.0  # weight of title similarity next to the whole text's (which has the title twice)
    )
    keyword: float = 0.0  # bonus for the keywords an entry matches (saturating)
    vocabulary: float = 0.05  # the subscriber's topics' vocabulary found in the entry
    topic: float = 0.075  # the entry's topic distribution on the subscriber's topics
    prf_k: int = 3  # pseudo-relevance feedback: top entries whose centroid joins the profile
    prf_weight: float = 1.0
    prf_self: bool = False  # whether a feedback entry's similarity to itself counts
    facet: float = (
        0.2  # the best single facet's similarity (a clause of the description, a keyword)
    )
    smooth: float = 0.2  # an offered entry's score moves this far towards its neighbours' mean
    smooth_k: int = 5  # its most similar offered entries
    prf_bar: float = 0.5  # the share of the selection bar a top entry must clear to feed back
    prf_trust: float = 2.0  # top entries less than this many background decile gaps up move it less


class EntryBatch:
    """The entries of one matching run as features; the first `offered` columns may be selected."""

    def __init__(
        self,
        entries: Sequence[Entry],
        offered: int,
        space: TextSpace,
        index: TopicIndex,
        profiles: Profiles,
        w: ScoreWeights,
    ) -> None:
        self.entries = list(entries)
        self.offered = offered
        texts = [entry_text(e) for e in entries]
        self.X = space.transform(texts)
        Z = self.X
        if w.title:  # the entry side: whole text plus its title again
            Z = sp.csr_matrix(self.X + w.title * space.transform(e.title for e in entries))
        self.Zt = sp.csr_matrix(Z.T)  # terms × entries
        self.zz = (Z @ Z.T).toarray().astype(np.float32)  # entries × entries
        self.neighbours = _neighbours(self.zz, offered, w) if w.smooth and offered > 1 else None
        n_own = len(profiles.phrases)
        hits = phrase_incidence(texts, profiles.phrases + index.phrases)
        self.hits_t = sp.csr_matrix(hits[:, :n_own].T)  # own phrases × entries
        dist, evidence = index.entry_topics(self.X, sp.csr_matrix(hits[:, n_own:]))
        self.topic_dist = dist
        # Entry-side topic features, one row block per score part (see `score_chunk`).
        self.topic_side = np.ascontiguousarray(
            np.hstack([(Z @ index.vectors.T).toarray(), evidence, dist]).T, dtype=np.float32
        )
        self.main_topic = (
            np.where(dist.max(axis=1) > 0, dist.argmax(axis=1), -1)
            if len(index.topics)
            else np.full(len(entries), -1)
        )
        col = {a: i for i, a in enumerate(profiles.authors)}
        rows, cols = [], []
        for r, e in enumerate(entries):
            for a in e.authors:
                c = col.get(_author_key(a))
                if c is not None:
                    rows.append(c)
                    cols.append(r)
        self.authors_t = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(col), len(entries))
        )
        self.hits = sp.csr_matrix(hits[:, :n_own])  # entries × own phrases, for reasons
        titles = [e.title for e in self.entries[:offered]]
        self.title_hits_t = sp.csr_matrix(phrase_incidence(titles, profiles.phrases).T)

    def keyword_hits(self, prof: Profiles, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, columns) of the offered entries whose title matches a keyword of subscribers lo..hi."""
        hits = (prof.keywords[lo:hi] @ self.title_hits_t).tocoo()
        return hits.row.astype(np.int64), hits.col.astype(np.int64)

    def delivered_mask(
        self, ids: Sequence[str], delivered: Mapping[str, set[str]] | None
    ) -> sp.csr_matrix:
        """subscribers × offered entries: 1 where the entry was already delivered to the subscriber."""
        where = {e.id: i for i, e in enumerate(self.entries[: self.offered])}
        rows, cols = [], []
        for r, sid in enumerate(ids):
            for eid in (delivered or {}).get(sid, ()):
                c = where.get(eid)
                if c is not None:
                    rows.append(r)
                    cols.append(c)
        return sp.csr_matrix(
            (np.ones(len(rows), bool), (rows, cols)), shape=(len(ids), self.offered)
        )


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


def score_chunk(
    batch: EntryBatch,
    prof: Profiles,
    fb: FeedbackModel,
    lo: int,
    hi: int,
    w: ScoreWeights,
    baseline: int = 0,
    calibration: Calibration | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (subscribers lo..hi × all batch entries), the forced mask and the excluded mask.

    The last `baseline` entries are reference texts (the topics): scored, never fed back.
    """
    n = batch.zz.shape[0]
    inv = prof.inv_norm[lo:hi, None]
    t_l2, t_max = prof.topic_l2[lo:hi], prof.topic_max[lo:hi]
    # Z·p: the text part (sparse) plus the topic-vocabulary part of the profile (dense, small).
    sz = (prof.query_n[lo:hi] @ batch.Zt).toarray()
    scale = prof.topic_scale[lo:hi, None]
    topic_side = np.hstack(
        [
            prof.topic_weight[lo:hi, None] * inv * t_l2,
            w.vocabulary * scale * t_l2,
            w.topic * scale * t_max,
        ]
    ).astype(np.float32)
    T = t_l2.shape[1]
    sz += topic_side[:, :T] @ batch.topic_side[:T]
    bonus = topic_side[:, T:] @ batch.topic_side[T:]
    hits = (prof.keywords[lo:hi] @ batch.hits_t).tocoo()
    bonus[hits.row, hits.col] += w.keyword * (1.0 - np.exp(-hits.data))
    if w.facet:
        a, b = prof.facet_ptr[lo], prof.facet_ptr[hi]
        per = (prof.facets[a:b] @ batch.Zt).tocoo()  # facets × entries, sparse
        group = np.repeat(
            np.arange(hi - lo), np.diff(prof.facet_ptr[lo : hi + 1])
        )  # facet row → subscriber
        best = np.zeros((hi - lo) * n, np.float32)
        np.maximum.at(best, group[per.row] * n + per.col, per.data)
        best *= w.facet
        bonus += best.reshape(hi - lo, n)
    if fb.has_votes(lo, hi):  # before the pseudo-relevance step, so the votes steer it too
        # The model's margins are in background gaps: each subscriber's own unit of standing out
        # (a vague profile's scores spread wide, a narrow one's hardly), so votes count alike.
        _, gap = background(
            sz + bonus, baseline, calibration or Calibration(), prof.own_topics[lo:hi]
        )
        bonus += gap[:, None] * (fb.rows[lo:hi] @ batch.Zt).toarray()
    scores = sz + bonus
    if w.prf_k and w.prf_weight and n > baseline:
        scores = _pseudo_relevance(
            batch, prof, scores, sz, bonus, lo, hi, w, baseline, calibration or Calibration()
        )
    if batch.neighbours is not None:  # the offered entries only; the rest keep their scores
        m = batch.offered
        scores[:, :m] = (1 - w.smooth) * scores[:, :m] + w.smooth * (
            batch.neighbours @ scores[:, :m].T
        ).T
    forced = (prof.follows[lo:hi] @ batch.authors_t).toarray() > 0
    excluded = (prof.excludes[lo:hi] @ batch.hits_t).toarray() > 0
    return scores, forced, excluded


def _pseudo_relevance(
    batch: EntryBatch,
    prof: Profiles,
    scores: np.ndarray,
    sz: np.ndarray,
    bonus: np.ndarray,
    lo: int,
    hi: int,
    w: ScoreWeights,
    baseline: int,
    calibration: Calibration,
) -> np.ndarray:
    """Rocchio through the Gram matrix: each profile moves towards its top entries' centroid.

    Each top entry counts by how far it stands out of the background (the topic texts' median,
    in upper-decile gaps), so entries at background level pull nothing; a top entry is raised by
    the others, not by itself; and the whole step is trusted only as far as the top entries
    stand out (a quiet day: no drift). The new profiles are never built: only their products.
    """
    n = batch.zz.shape[0]
    k = min(w.prf_k, n - baseline)
    rows = np.arange(hi - lo)[:, None]
    top = top_k(scores[:, : n - baseline], k)  # c × k, real entries only
    own = prof.own_topics[lo:hi] if calibration.own_topics else None
    med, gap = background(scores, baseline, calibration, own)
    # How far each top entry clears the selection bar (spread gaps above the median), in gaps:
    # only entries that would be sent on their own feed back.
    lead = (scores[rows, top] - med[:, None]) / gap[
        :, None
    ] - w.prf_bar * calibration.spread  # c × k
    wt = np.maximum(lead, 0.0)
    total = wt.sum(axis=1, keepdims=True)
    wt = np.where(total > 0, wt / np.maximum(total, 1e-12), 0.0).astype(np.float32)
    gram = batch.zz[top[:, :, None], top[:, None, :]]  # c × k × k
    c_norm = np.sqrt(np.maximum(np.einsum("ci,cij,cj->c", wt, gram, wt), 1e-12))
    z_c = wt[:, :1] * batch.zz[top[:, 0]]
    for j in range(1, k):
        z_c += wt[:, j : j + 1] * batch.zz[top[:, j]]
    z_c /= c_norm[:, None]  # Z·ĉ
    if k > 1 and not w.prf_self:  # a top entry is raised by the others, not by itself
        own = wt * np.diagonal(gram, axis1=1, axis2=2) / c_norm[:, None]
        z_c[rows, top] = (z_c[rows, top] - own) / np.maximum(1.0 - wt, 1e-6)
    p_c = (wt * sz[rows, top]).sum(axis=1) / c_norm  # p·ĉ
    trust = np.clip(lead.mean(axis=1) / w.prf_trust, 0.0, 1.0)
    b = (w.prf_weight * trust * (prof.inv_norm[lo:hi] > 0) * (c_norm > 1e-6)).astype(np.float32)
    den = np.sqrt(np.maximum(1 + 2 * b * p_c + b * b, 1e-12))
    z_c *= (b / den)[:, None]
    out: np.ndarray = sz * (1 / den)[:, None]
    out += z_c
    out += bonus
    return out


def _neighbours(zz: np.ndarray, pool: int, w: ScoreWeights) -> sp.csr_matrix:
    """pool × pool: each of the first `pool` entries' `smooth_k` most similar others, weights summing to 1."""
    n = pool
    k = min(w.smooth_k, pool - 1)
    sims = zz[:pool, :pool].copy()
    idx = np.arange(pool)
    sims[idx, idx] = -np.inf
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    vals = np.maximum(np.take_along_axis(sims, top, 1), 0)
    vals /= np.maximum(vals.sum(1, keepdims=True), 1e-12)
    return sp.csr_matrix((vals.ravel(), (np.repeat(np.arange(n), k), top.ravel())), shape=(n, n))
