"""Why an entry was chosen: matched keywords, topics, the terms that weighed most, liked papers."""

from __future__ import annotations

import numpy as np

from .classifier import EntryBatch
from .features import TextSpace
from .feedback import FeedbackModel
from .profiles import Profiles
from .topics import TopicIndex

AUTHOR = "by an author you follow"
_COMMON_IDF = 1.0 + float(np.log(10.0))  # idf of a term in 10% of the documents


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
    # Terms: the entry's terms weighted by the profile (its own words plus its topics' vocabulary).
    x = batch.X
    cols = x.indices[x.indptr[e] : x.indptr[e + 1]]
    if cols.size:
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
        best = [int(i) for i in np.argsort(-contrib)[:n_terms] if contrib[i] > 0]
        if best:
            why.append("terms: " + ", ".join(space.display(str(terms[cols[i]])) for i in best))
    liked = fb.liked.get(r)
    if liked is not None:
        sims = (liked[1] @ x[e].T).toarray().ravel()
        i = int(np.argmax(sims))
        if sims[i] >= 0.2:
            why.append(f"like “{liked[0][i].title}”")
    return tuple(why)
