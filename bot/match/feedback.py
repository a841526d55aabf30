"""The per-subscriber feedback model: a linear model on 👍/👎 that starts from the profile.

For each subscriber with votes we fit a ridge regression in the tf-idf space whose prior is the
profile itself: minimize Σ (yᵢ − xᵢ·w)² + λ‖w − p‖², where a 👍 asks for its entry to score
`margin` higher than the profile scores it and a 👎 for `margin` lower. The solution is
w = p + Xᵀ(XXᵀ + λI)⁻¹·(±margin): one small n×n solve per subscriber (n = their votes), no
iterations, refitted on every run from the stored votes.

The margin is in units of the subscriber's background gap (`calibrate.background`, applied in
`classifier.score_chunk`): how far an ordinary text spreads above the median for *this* profile.
So votes count alike for a vague profile, whose scores spread wide, and a narrow one: a few
votes reorder, half a dozen consistent ones make a theme stand out enough to be sent. With
λ = 1 a single vote moves its entry by half the margin and its neighbours by less. Margin and
λ are chosen by the issue's bar on the hf-weeks experiment (`benchmarks/relevance.py`: mean
change of nDCG@10, less every drop beyond 0.02, and leave-one-subscriber-out), and so is
`dislike`, the share of the margin a 👎 asks for: people mark far more 👎 than 👍 (16 to 1 in that
experiment), and at full weight the sum of many 👎 drags down whatever they share with a liked
paper (Rocchio's classic weights count negatives less for the same reason).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..models import Entry
from .features import TextSpace, entry_text


@dataclass(frozen=True, slots=True)
class FeedbackSettings:
    """How strongly votes move scores."""

    margin: float = 2.0  # how many background gaps higher (lower) a 👍 (👎) entry should score
    ridge: float = 1.0  # λ: the pull back towards the profile
    max_votes: int = 300  # the most recent votes used per subscriber
    dislike: float = 0.5  # a 👎 asks for this share of the margin (a 👍 for all of it)


@dataclass(slots=True)
class FeedbackModel:
    """The learned adjustments: a sparse row per subscriber (zero without votes) and the liked entries."""

    rows: sp.csr_matrix
    liked: dict[int, tuple[list[Entry], sp.csr_matrix]] = field(default_factory=dict)

    def has_votes(self, lo: int, hi: int) -> bool:
        """Whether any subscriber in rows lo..hi voted."""
        return bool(self.rows[lo:hi].nnz)


def learn(
    feedback: Mapping[str, Sequence[tuple[Entry, int]]] | None,
    subscriber_ids: Sequence[str],
    space: TextSpace,
    settings: FeedbackSettings = FeedbackSettings(),
) -> FeedbackModel:
    """Fit the adjustment of every subscriber who voted; one small linear solve each."""
    n_terms = len(space.terms)
    rows, cols, vals = [], [], []
    liked: dict[int, tuple[list[Entry], sp.csr_matrix]] = {}
    row = {sid: r for r, sid in enumerate(subscriber_ids)} if feedback else {}
    for sid, all_votes in (feedback or {}).items():
        r = row.get(sid, -1)
        if r < 0:
            continue
        votes = list(all_votes)[-settings.max_votes :]
        latest: dict[str, tuple[Entry, int]] = {
            e.id: (e, v) for e, v in votes
        }  # a re-vote replaces
        if not latest:
            continue
        entries = [e for e, _ in latest.values()]
        y = np.array(
            [settings.margin * (1 if v > 0 else -settings.dislike) for _, v in latest.values()],
            np.float64,
        )
        Xf = space.transform(entry_text(e) for e in entries)
        gram = (Xf @ Xf.T).toarray().astype(np.float64)
        alpha = np.linalg.solve(gram + settings.ridge * np.eye(len(y)), y)
        adj = sp.csr_matrix(alpha.astype(np.float32)) @ Xf
        adj.eliminate_zeros()
        rows += [r] * adj.nnz
        cols += list(adj.indices)
        vals += list(adj.data)
        ups = [i for i, (_, v) in enumerate(latest.values()) if v > 0]
        if ups:
            liked[r] = ([entries[i] for i in ups], Xf[ups])
    m = sp.csr_matrix(
        (np.array(vals, np.float32), (rows, cols)), shape=(len(subscriber_ids), n_terms)
    )
    return FeedbackModel(m, liked)
