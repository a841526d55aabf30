"""Matching: score every entry for every subscriber in one pass, select, and say why.

`Matcher().fit(corpus).match(entries, subscribers, delivered=..., feedback=...)` returns, for
each subscriber id, its `Match`es best first; `selected` marks what its digest should send.
The parts: `features` (tokens, tf-idf space), `topics` (taxonomy), `profiles` (interests as
vectors), `classifier` (chunked scoring), `feedback` (per-subscriber model), `calibrate`
(selection) and `explain` (reasons).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from ..gcpause import gc_paused
from ..models import Entry, Match, Subscriber
from .calibrate import Calibration, bars, select
from .classifier import EntryBatch, ScoreWeights, score_chunk
from .explain import Explainer
from .features import TextSpace, entry_text
from .feedback import FeedbackModel, FeedbackSettings, learn
from .profiles import Profiles, ProfileWeights
from .topics import Topic, TopicIndex, known_topics, load_topics

_Chunk = tuple[int, int, np.ndarray, np.ndarray, np.ndarray]  # lo, hi, scores, chosen, forced

MIN_REFERENCE = 200  # fewer offered entries than this: recent corpus entries join the feedback pool
BACKGROUND = 500  # how many corpus entries join then (scored, never selected)


@dataclass(slots=True)
class Selection:
    """The raw result of `Matcher.select`: selected (subscriber row, entry row, score) triples."""

    subscribers: np.ndarray
    entries: np.ndarray
    scores: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)  # profiles, entries, scoring


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


class Matcher:
    """tf-idf profiles, topics, keywords and feedback; fit on a corpus, then `match` all subscribers at once."""

    def __init__(
        self,
        *,
        topics_file: str | Path | None = None,
        chunk_size: int = 2048,
        profile: ProfileWeights | None = None,
        weights: ScoreWeights | None = None,
        calibration: Calibration | None = None,
        feedback: FeedbackSettings | None = None,
    ) -> None:
        self.topics: list[Topic] = load_topics(topics_file)
        self.chunk_size = chunk_size
        self.profile_weights = profile or ProfileWeights()
        self.weights = weights or ScoreWeights()
        self.calibration = calibration or Calibration()
        self.feedback_settings = feedback or FeedbackSettings()
        self.space = TextSpace()
        self.corpus: list[Entry] = []
        self.fitted = False
        self.seconds: dict[str, float] = {}
        self._baseline = 0  # how many trailing reference columns are topic texts

    def fit(self, corpus: Sequence[Entry]) -> Matcher:
        """Learn the vocabulary and its weights from recent entries (and the topic descriptions)."""
        self.corpus = list(corpus)
        # The topics' texts join the corpus so their vocabulary is in the space from day one.
        self.space.fit([entry_text(e) for e in self.corpus] + [t.text for t in self.topics])
        self.index = TopicIndex(self.topics, self.space)
        self.fitted = True
        return self

    def _prepare(
        self,
        entries: Sequence[Entry],
        subscribers: Sequence[Subscriber],
        feedback: Mapping[str, Sequence[tuple[Entry, int]]] | None,
    ) -> tuple[EntryBatch, Profiles, FeedbackModel]:
        if not self.fitted:
            self.fit(entries)
        offered = list(entries)
        ref = offered
        if len(offered) < MIN_REFERENCE and self.corpus:
            seen = {e.id for e in offered}
            ref = offered + [e for e in self.corpus if e.id not in seen][:BACKGROUND]
        # The taxonomy's topics join as the typical documents of the field: the background every
        # subscriber's selection is judged against (`calibrate`). It does not depend on what the
        # store holds, or on a narrow feed being all on the subscriber's subject.
        self._baseline = len(self.topics)
        ref = ref + [Entry(id=f"topic:{t.slug}", title=t.name, summary=t.text) for t in self.topics]
        t0 = time.perf_counter()
        prof = Profiles(subscribers, self.space, self.index, self.profile_weights)
        t1 = time.perf_counter()
        batch = EntryBatch(ref, len(offered), self.space, self.index, prof, self.weights)
        fb = learn(feedback, prof.ids, self.space, self.feedback_settings)
        self.seconds = {"profiles": t1 - t0, "entries": time.perf_counter() - t1}
        return batch, prof, fb

    def _chunks(
        self,
        batch: EntryBatch,
        prof: Profiles,
        fb: FeedbackModel,
        delivered: Mapping[str, set[str]] | None,
    ) -> Iterator[_Chunk]:
        n = batch.offered
        done = batch.delivered_mask(prof.ids, delivered)
        # The dense products here are small (topics × entries): one BLAS thread is faster, and
        # does not fight other processes for the cores.
        with threadpool_limits(limits=1, user_api="blas"):
            yield from self._score_chunks(batch, prof, fb, done, n)

    def _score_chunks(
        self, batch: EntryBatch, prof: Profiles, fb: FeedbackModel, done: sp.csr_matrix, n: int
    ) -> Iterator[_Chunk]:
        for lo in range(0, len(prof), self.chunk_size):
            hi = min(lo + self.chunk_size, len(prof))
            scores, forced, excluded = score_chunk(
                batch, prof, fb, lo, hi, self.weights, self._baseline, self.calibration
            )
            thr, kw_thr = bars(scores, self.calibration, self._baseline, n, prof.own_topics[lo:hi])
            allowed = ~excluded[:, :n]
            part = done[lo:hi]
            if part.nnz:
                allowed &= ~part.toarray()
            hit = batch.keyword_hits(prof, lo, hi)
            chosen = select(
                scores[:, :n], thr, allowed, forced[:, :n], prof.max_items[lo:hi], (*hit, kw_thr)
            )
            yield lo, hi, scores[:, :n], chosen, forced[:, :n]

    def select(
        self,
        entries: Sequence[Entry],
        subscribers: Sequence[Subscriber],
        *,
        delivered: Mapping[str, set[str]] | None = None,
        feedback: Mapping[str, Sequence[tuple[Entry, int]]] | None = None,
    ) -> Selection:
        """Only the selected pairs, as arrays (rows index `subscribers` and `entries`); no reasons."""
        with gc_paused():
            batch, prof, fb = self._prepare(entries, subscribers, feedback)
        t0 = time.perf_counter()
        subs, ents, vals = [], [], []
        for lo, _, scores, chosen, _ in self._chunks(batch, prof, fb, delivered):
            s, e = np.nonzero(chosen)
            subs.append(s + lo)
            ents.append(e)
            vals.append(scores[s, e])
        seconds = {**self.seconds, "scoring": time.perf_counter() - t0}
        return Selection(
            _cat(subs, np.int64), _cat(ents, np.int64), _cat(vals, np.float32), seconds
        )

    def match(
        self,
        entries: Sequence[Entry],
        subscribers: Sequence[Subscriber],
        *,
        delivered: Mapping[str, set[str]] | None = None,
        feedback: Mapping[str, Sequence[tuple[Entry, int]]] | None = None,
        unselected: bool = True,
    ) -> dict[str, list[Match]]:
        """Every entry ranked for every subscriber, best first, `selected` marking what to send.

        With `unselected=False` only the selected matches are returned (cheaper for many subscribers).
        Selected matches carry their reasons; every match carries the entry's main topic name.
        """
        with gc_paused():  # a million `Match`es and their reasons: see bot.gcpause
            return self._match(entries, subscribers, delivered, feedback, unselected)

    def _match(
        self,
        entries: Sequence[Entry],
        subscribers: Sequence[Subscriber],
        delivered: Mapping[str, set[str]] | None,
        feedback: Mapping[str, Sequence[tuple[Entry, int]]] | None,
        unselected: bool,
    ) -> dict[str, list[Match]]:
        out: dict[str, list[Match]] = {s.id: [] for s in subscribers}
        if not entries or not subscribers:
            return out
        batch, prof, fb = self._prepare(entries, subscribers, feedback)
        topic_names = [self.index.names[t] if t >= 0 else "" for t in batch.main_topic]
        ids = [e.id for e in batch.entries]
        explain = Explainer(batch, prof, self.index, fb, self.space)
        for lo, hi, scores, chosen, forced in self._chunks(batch, prof, fb, delivered):
            c, e = _ranked(scores, chosen, forced, unselected)
            sel = chosen[c, e]
            why = iter(explain(c[sel] + lo, e[sel], forced[c[sel], e[sel]]))
            ends = np.cumsum(np.bincount(c, minlength=hi - lo)).tolist()
            matches = [
                Match(ids[j], round(v, 4), s, next(why) if s else (), topic_names[j])
                for j, v, s in zip(e.tolist(), scores[c, e].tolist(), sel.tolist(), strict=True)
            ]
            start = 0
            for r, end in enumerate(ends):
                out[prof.ids[lo + r]] = matches[start:end]
                start = end
        return out


def _ranked(
    scores: np.ndarray, chosen: np.ndarray, forced: np.ndarray, unselected: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(row, entry) of a chunk's matches, row by row, each row best first: a followed author's
    papers ahead of the rest (they are always sent), then by score, ties by entry order.
    Every entry of each row, or (`unselected=False`) the chosen ones only."""
    if unselected:
        order = np.lexsort((-scores, ~forced), axis=-1)
        return np.repeat(np.arange(scores.shape[0]), scores.shape[1]), order.ravel()
    c, e = np.nonzero(chosen)
    order = np.lexsort((-scores[c, e], ~forced[c, e], c))
    return c[order], e[order]


__all__ = ["Calibration", "Match", "Matcher", "Selection", "Topic", "known_topics", "load_topics"]
