"""The scorer: entries × subscribers scores in chunks of subscribers, all sparse/dense matrix work.

score = cos(entry, profile after pseudo-relevance feedback), where the entry side is the abstract
plus a weighted title and the profile is description + keywords + topic vocabulary, then
+ a small bonus per matched keyword, + topic evidence (the entry's topic vocabulary and topic
distribution against the subscriber's topics), + the feedback model's adjustment.

Pseudo-relevance feedback (Rocchio) moves each profile towards the centroid of its top `prf_k`
entries; it is done without building the new profiles, through the entries' Gram matrices.
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

    title: float = 0.3  # weight of title similarity next to the whole text's
    keyword: float = 0.05  # bonus for the keywords an entry matches (saturating)
    vocabulary: float = 0.2  # the subscriber's topics' vocabulary found in the entry
    topic: float = 0.3  # the entry's topic distribution on the subscriber's topics
    prf_k: int = 3  # pseudo-relevance feedback: top entries whose centroid joins the profile
    prf_weight: float = 0.6
    prf_trust: float = 0.3  # top entries scoring below this move the profile proportionally less


class EntryBatch:
    """The entries of one matching run as features; the first `offered` rows may be selected."""

    def __init__(self, entries: Sequence[Entry], offered: int, space: TextSpace, index: TopicIndex,
                 profiles: Profiles, w: ScoreWeights) -> None:
        self.entries = list(entries)
        self.offered = offered
        texts = [entry_text(e) for e in entries]
        self.X = space.transform(texts)
        XT = space.transform(e.title for e in entries)
        self.Z = sp.csr_matrix(self.X + w.title * XT)
        self.stacked = sp.vstack([self.X, self.Z]).tocsr()  # one product gives X·q and Z·q
        topics_t = index.vectors.T
        self.x_topics = (self.X @ topics_t).toarray()
        self.z_topics = (self.Z @ topics_t).toarray()
        n_own = len(profiles.phrases)
        hits = phrase_incidence(texts, profiles.phrases + index.phrases)
        self.hits = sp.csr_matrix(hits[:, :n_own])
        self.topic_dist, self.evidence = index.entry_topics(self.X, sp.csr_matrix(hits[:, n_own:]))
        self.main_topic = np.where(self.topic_dist.max(axis=1) > 0, self.topic_dist.argmax(axis=1), -1) if len(index.topics) else np.full(len(entries), -1)
        self.zx = (self.Z @ self.X.T).toarray().astype(np.float32)  # entries × entries
        self.xx = (self.X @ self.X.T).toarray().astype(np.float32)
        col = {a: i for i, a in enumerate(profiles.authors)}
        rows, cols = [], []
        for r, e in enumerate(entries):
            for a in e.authors:
                c = col.get(_author_key(a))
                if c is not None:
                    rows.append(r)
                    cols.append(c)
        self.by_author = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(entries), len(col)))

    def delivered_mask(self, ids: Sequence[str], delivered: Mapping[str, set[str]] | None) -> sp.csr_matrix:
        """offered entries × subscribers: 1 where the entry was already delivered to the subscriber."""
        where = {e.id: i for i, e in enumerate(self.entries[: self.offered])}
        rows, cols = [], []
        for c, sid in enumerate(ids):
            for eid in (delivered or {}).get(sid, ()):
                r = where.get(eid)
                if r is not None:
                    rows.append(r)
                    cols.append(c)
        return sp.csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(self.offered, len(ids)))


def score_chunk(batch: EntryBatch, prof: Profiles, fb: FeedbackModel, lo: int, hi: int,
                w: ScoreWeights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (all batch entries × subscribers lo..hi), the forced mask and the excluded mask."""
    n = batch.X.shape[0]
    q = prof.query[lo:hi]
    t_l2, t_max, inv = prof.topic_l2[lo:hi], prof.topic_max[lo:hi], prof.inv_norm[lo:hi]
    both = (batch.stacked @ q.T).toarray()
    sx = (both[:n] + prof.topic_weight * (batch.x_topics @ t_l2.T)) * inv  # X·p
    sz = (both[n:] + prof.topic_weight * (batch.z_topics @ t_l2.T)) * inv  # (X + title·Xt)·p
    hits = (batch.hits @ prof.keywords[lo:hi].T).toarray()
    bonus = (w.keyword * (1.0 - np.exp(-hits)) + w.vocabulary * (batch.evidence @ t_l2.T)
             + w.topic * (batch.topic_dist @ t_max.T))
    scores = sz + bonus
    k = min(w.prf_k, n)
    if k and w.prf_weight:
        cols = np.arange(hi - lo)
        top = np.argpartition(-scores, k - 1, axis=0)[:k]  # k × c
        c_norm = np.sqrt(np.maximum(batch.xx[top[:, None, :], top[None, :, :]].sum(axis=(0, 1)), 1e-12)) / k
        z_c = batch.zx[:, top].sum(axis=1) / k / c_norm  # Z·ĉ
        p_c = sx[top, cols].mean(axis=0) / c_norm  # p·ĉ
        trust = np.clip(scores[top, cols].mean(axis=0) / w.prf_trust, 0.0, 1.0)  # a quiet day: no drift
        b = (w.prf_weight * trust * (inv > 0)).astype(np.float32)
        scores = (sz + b * z_c) / np.sqrt(1 + 2 * b * p_c + b * b) + bonus
    if fb.has_votes(lo, hi):
        scores += (batch.Z @ fb.rows[lo:hi].T).toarray()
    forced = (batch.by_author @ prof.follows[lo:hi].T).toarray() > 0
    excluded = (batch.hits @ prof.excludes[lo:hi].T).toarray() > 0
    return scores.astype(np.float32), forced, excluded
