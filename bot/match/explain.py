"""Why an entry was chosen: matched keywords, topics, the terms that weighed most, liked papers.

`Explainer` explains every selected (subscriber, entry) pair of a run in a few array passes
(the terms: `terms.TopTerms`); `reasons` explains one pair the straightforward way, and they
give the same reasons. Equal term weights are listed in the entry's term order.
"""

from __future__ import annotations

import numpy as np

from .classifier import EntryBatch
from .features import TextSpace
from .feedback import FeedbackModel
from .profiles import Profiles
from .terms import COMMON_IDF, TopTerms, find, keys, spans
from .topics import TopicIndex

AUTHOR = "by an author you follow"


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
    why += _pair_keywords(batch, prof, r, e)
    t = int(batch.main_topic[e])
    if t >= 0 and prof.topic_raw[r, t] > 0:
        why.append(f"topic: {index.names[t]}")
    best = _pair_terms(batch, prof, index, space, r, e, n_terms)
    if best:
        why.append("terms: " + ", ".join(space.display(str(terms[c])) for c in best))
    if r in fb.liked:
        why += _liked(batch, fb, r, e)
    return tuple(why)


def _pair_keywords(batch: EntryBatch, prof: Profiles, r: int, e: int) -> list[str]:
    """ "keyword: …" for each of subscriber row `r`'s keywords entry row `e` holds."""
    hit_cols = batch.hits.indices[batch.hits.indptr[e] : batch.hits.indptr[e + 1]]
    kw = prof.keywords
    own = set(kw.indices[kw.indptr[r] : kw.indptr[r + 1]].tolist())
    return [f"keyword: {prof.labels[prof.phrases[c]]}" for c in hit_cols if c in own]


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
    contrib = vals * qd * (space.idf[cols] >= COMMON_IDF)
    # Equal weights in the entry's term order (its columns ascending), the rule `_rank` keeps.
    return [int(cols[i]) for i in np.argsort(-contrib, kind="stable")[:n_terms] if contrib[i] > 0]


class Explainer:
    """`reasons` for many pairs of one matching run, chunk after chunk."""

    def __init__(
        self,
        batch: EntryBatch,
        prof: Profiles,
        index: TopicIndex,
        fb: FeedbackModel,
        space: TextSpace,
        n_terms: int = 3,
    ) -> None:
        self.batch, self.prof, self.index, self.fb, self.space = batch, prof, index, fb, space
        self.n_terms = n_terms
        self.top_terms = TopTerms(batch, prof, index, space)
        self.terms = space.terms
        self.topic_label = [f"topic: {name}" for name in index.names]
        self.keyword_label: dict[int, str] = {}
        self.shown: dict[int, str] = {}  # column → the term as a reader writes it
        hits = batch.hits
        self.hit_keys = keys(hits) if hits.has_sorted_indices else None

    def __call__(
        self, rows: np.ndarray, ents: np.ndarray, forced: np.ndarray
    ) -> list[tuple[str, ...]]:
        """`reasons` for every pair (subscriber row `rows[i]`, entry row `ents[i]`, `forced[i]`).

        The keywords are looked up for all pairs together, so are the terms (`TopTerms`); the
        liked papers for the few subscribers who liked any.
        """
        rows = np.asarray(rows, np.int64)
        ents = np.asarray(ents, np.int64)
        if not rows.size:
            return []
        batch, prof, space, fb = self.batch, self.prof, self.space, self.fb
        keywords = self._keywords(rows, ents)
        t = batch.main_topic[ents]
        has_topic = (t >= 0) & (prof.topic_raw[rows, np.maximum(t, 0)] > 0)
        best, unsure = self.top_terms(rows, ents, self.n_terms)
        for i in np.flatnonzero(unsure).tolist():  # the one-pair way (see `TopTerms`)
            best[i] = _pair_terms(
                batch, prof, self.index, space, int(rows[i]), int(ents[i]), self.n_terms
            )
        shown = self.shown
        for c in {c for top in best for c in top} - shown.keys():
            shown[c] = space.display(str(self.terms[c]))
        texts = [f"terms: {', '.join([shown[c] for c in top])}" if top else "" for top in best]
        topic = [self.topic_label[x] if y else "" for x, y in zip(t.tolist(), has_topic.tolist())]
        out: list[tuple[str, ...]] = []
        for author, kw, label, text in zip(
            np.asarray(forced, bool).tolist(), keywords, topic, texts, strict=True
        ):
            why = [AUTHOR, *kw] if author else kw
            if label:
                why.append(label)
            if text:
                why.append(text)
            out.append(tuple(why))
        if fb.liked:  # the few subscribers who liked a paper
            for i in np.flatnonzero(np.isin(rows, list(fb.liked))).tolist():
                out[i] += tuple(_liked(batch, fb, int(rows[i]), int(ents[i])))
        return out

    def _keywords(self, rows: np.ndarray, ents: np.ndarray) -> list[list[str]]:
        """Per pair, "keyword: …" for each of the subscriber's keywords the entry holds, in the
        entry's phrase order (`reasons`' order: columns ascending, as the subscriber's are).

        Each of the pair's keywords is looked up among the entry's phrases (few lookups a pair,
        however many phrases all subscribers together have)."""
        batch, prof = self.batch, self.prof
        if self.hit_keys is None:  # `reasons` lists them in the entry's stored order
            return [_pair_keywords(batch, prof, r, e) for r, e in zip(rows, ents, strict=True)]
        kw = prof.keywords
        which, pos = spans(kw.indptr[rows], kw.indptr[rows + 1] - kw.indptr[rows])
        cols = kw.indices[pos].astype(np.int64)
        held = find(ents[which] * batch.hits.shape[1] + cols, self.hit_keys)
        if not kw.has_sorted_indices:  # list them in the entry's (ascending) phrase order
            order = np.lexsort((cols, which))
            which, cols, held = which[order], cols[order], held[order]
        labels = self.keyword_label
        out: list[list[str]] = [[] for _ in range(len(rows))]
        for i, c in zip(which[held].tolist(), cols[held].tolist(), strict=True):
            label = labels.get(c)
            if label is None:
                label = labels[c] = f"keyword: {prof.labels[prof.phrases[c]]}"
            out[i].append(label)
        return out


def _liked(batch: EntryBatch, fb: FeedbackModel, r: int, e: int) -> list[str]:
    """ "like “title”": the paper subscriber row `r` liked that is nearest entry row `e`, if near."""
    liked = fb.liked[r]
    sims = (liked[1] @ batch.X[e].T).toarray().ravel()
    i = int(np.argmax(sims))
    return [f"like “{liked[0][i].title}”"] if sims[i] >= 0.2 else []
