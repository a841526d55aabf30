"""Subscriber profiles: each subscriber's interests as vectors, phrases and topic weights."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..models import Subscriber
from .features import TextSpace, phrase_key
from .topics import TopicIndex

# "Image (not video) diffusion", "LLMs, excluding robotics": what follows is a soft negative.
_NEGATION = re.compile(
    r"\b(?:not|excluding|except|other than)\s+([A-Za-z][\w\-/ ]{1,40}?)(?=[),.;:]|$)", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class ProfileWeights:
    """How a profile is made from interests (fixed, data-independent defaults)."""

    description: float = 1.0
    keywords: float = 1.0
    topics: float = 0.125  # the vocabulary of followed and implied topics
    described: float = (
        0.0  # the share of the topic parts kept when the interests have a description
    )
    negation: float = 1.0  # "(not video)" pushes video papers down
    followed_topic: float = 1.0  # topic weight of a topic the subscriber follows
    keyword_topic: float = 1.0  # topic weight a keyword gives the topics whose vocabulary has it
    description_topic: float = 0.5  # likewise for a vocabulary phrase in the description
    coverage: float = 2.0  # the topic parts scale with (share of keywords the taxonomy covers)^this


_FACETS = re.compile(r"[,;:.]|\band\b")


def _may_negate(description: str) -> bool:
    """A cheap test before the regular expression: could `description` rule something out?"""
    low = description.lower()
    return "not " in low or "except" in low or "excluding" in low or "other than" in low


def negated_phrases(description: str) -> list[str]:
    """The phrases a description rules out ("not video", "excluding robotics")."""
    return [m.group(1).strip() for m in _NEGATION.finditer(description)]


def _author_key(name: str) -> str:
    """A name as followed authors are matched: Unicode-normalized (a feed may write "José" with
    a combining accent, NFD), case-folded, dots and runs of spaces as one space."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().replace(".", " ").split())


def _unit_rows(a: np.ndarray) -> np.ndarray:
    """A copy of `a` with unit rows, as scikit-learn's `normalize` makes them (its very steps)."""
    out = np.array(a, dtype=np.float64 if a.dtype.kind != "f" else a.dtype)
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    norms[norms < 10 * np.finfo(norms.dtype).eps] = 1.0
    out /= norms[:, None]
    return out


def _incidence(
    rows: Sequence[int] | np.ndarray, cols: Sequence[int] | np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """A 0/1 matrix from (row, col) pairs; pairs with col -1 are left out, repeats count once."""
    r, c = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    keep = c >= 0
    m = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (r[keep], c[keep])), shape=shape)
    m.data[:] = 1.0
    return m


class Profiles:
    """All subscribers' profiles as matrices, rows in subscriber order."""

    def __init__(
        self,
        subscribers: Sequence[Subscriber],
        space: TextSpace,
        index: TopicIndex,
        w: ProfileWeights = ProfileWeights(),
    ) -> None:
        """Every subscriber's profile vectors, phrases and topic weights, built in one pass.

        Long on purpose: the steps share the sparse matrices they build (description, keywords,
        topics, feedback rows) and run once over all subscribers; see the comments per step.
        """
        n = len(subscribers)
        self.ids = [s.id for s in subscribers]
        self.max_items = np.array([s.max_items for s in subscribers], dtype=np.int64)
        interests = [s.interests for s in subscribers]
        negated = [
            " . ".join(negated_phrases(i.description)) if _may_negate(i.description) else ""
            for i in interests
        ]
        positive = [
            _NEGATION.sub(" ", i.description) if n else i.description
            for i, n in zip(interests, negated)
        ]
        # Facets: each clause of the description and each keyword on its own (at least one row
        # per subscriber, maybe empty), so an entry on one facet of a broad interest is not diluted.
        facet_texts: list[str] = []
        ptr = [0]
        for i, pos in zip(interests, positive):
            parts = [f.strip() for f in _FACETS.split(pos) if f.strip()] + list(i.keywords)
            facet_texts += parts or [""]
            ptr.append(len(facet_texts))
        # One transform for descriptions, keyword lists and facets, each distinct text once.
        texts = positive + [" . ".join(i.keywords) for i in interests] + facet_texts
        distinct = {t: i for i, t in enumerate(dict.fromkeys(texts))}
        which = np.fromiter(map(distinct.__getitem__, texts), np.int64, len(texts))
        vectors = space.transform(list(distinct))
        desc, kw = vectors[which[:n]], vectors[which[n : 2 * n]]
        self.facets = vectors[which[2 * n :]]
        self.facet_ptr = np.asarray(ptr, np.int64)
        has_neg = [r for r, n in enumerate(negated) if n]
        neg = sp.csr_matrix((n, desc.shape[1]), dtype=np.float32)
        if has_neg:  # few descriptions rule something out: transform only those
            part = space.transform(negated[r] for r in has_neg).tocoo()
            neg = sp.csr_matrix(
                (part.data, (np.asarray(has_neg)[part.row], part.col)), shape=neg.shape
            )
        self.query = sp.csr_matrix(w.description * desc + w.keywords * kw - w.negation * neg)

        # Phrases (keywords, excludes) as columns of incidence matrices shared by everyone.
        phrases: dict[str, int] = {}  # phrase key → column
        column_of: dict[str, int] = {}  # as written → column (-1: no words in it)
        self.labels: dict[str, str] = {}  # phrase key → the first subscriber's own spelling

        def column(p: str) -> int:
            c = column_of.get(p)
            if c is None:
                key = phrase_key(p)
                c = phrases.setdefault(key, len(phrases)) if key else -1
                if key:
                    self.labels.setdefault(key, p)
                column_of[p] = c
            return c

        slug = {t.slug: ti for ti, t in enumerate(index.topics)}
        authors: dict[str, int] = {}

        def pairs(
            lists: list[tuple[str, ...]], col: Callable[[str], int]
        ) -> tuple[np.ndarray, np.ndarray]:
            """(row, column) for every item of every subscriber's list; each distinct item looked up once."""
            flat = [x for xs in lists for x in xs]
            where = {x: col(x) for x in dict.fromkeys(flat)}
            rows = np.repeat(np.arange(len(lists)), [len(xs) for xs in lists])
            return rows, np.fromiter(map(where.__getitem__, flat), np.int64, len(flat))

        kw_rows, kw_cols = pairs([i.keywords for i in interests], column)
        ex_rows, ex_cols = pairs([i.exclude for i in interests], column)
        tp_rows, tp_cols = pairs([i.topics for i in interests], lambda t: slug.get(t, -1))
        au_rows, au_cols = pairs(
            [i.authors for i in interests],
            lambda a: authors.setdefault(_author_key(a), len(authors)),
        )
        self.phrases = list(phrases)
        shape = (n, len(self.phrases))
        self.keywords = _incidence(kw_rows, kw_cols, shape)
        self.excludes = _incidence(ex_rows, ex_cols, shape)
        self.authors = list(authors)
        self.follows = _incidence(au_rows, au_cols, (n, len(authors)))
        # Topics: implied by the description's phrases ("(not video)": the topics it names count
        # against), by the keywords (each splits its weight over the topics that list it), followed.
        owners = sp.csr_matrix(index.weights_for_each(self.phrases))  # phrases × topics
        topic_w = (
            index.weights_in(desc, w.description_topic)
            - index.weights_in(neg, w.description_topic)
            + w.keyword_topic * (self.keywords @ owners).toarray()
            + w.followed_topic * _incidence(tp_rows, tp_cols, (n, len(index.topics))).toarray()
        )
        self.topic_raw = topic_w
        self.topic_l2 = _unit_rows(topic_w).astype(np.float32)
        self.topic_max = (topic_w / np.maximum(topic_w.max(axis=1, keepdims=True), 1e-9)).astype(
            np.float32
        )
        # A description already says what it means; the taxonomy's broad topics then mostly pull
        # in their neighbours. Keywords alone (or followed topics) need the expansion.
        bare = np.array([not i.description.strip() or bool(i.topics) for i in interests])
        # The taxonomy speaks for a keyword list only as far as it covers it: the share of the
        # keywords some topic lists (followed topics: all of it).
        covered = np.asarray(self.keywords @ (owners.sum(axis=1) > 0).astype(np.float32)).ravel()
        n_kw = np.asarray(self.keywords.sum(axis=1)).ravel()
        followed = np.array([bool(i.topics) for i in interests])
        coverage = np.where(followed | (n_kw == 0), 1.0, covered / np.maximum(n_kw, 1))
        self.topic_scale = np.where(bare, coverage**w.coverage, w.described).astype(np.float32)
        self.topic_weight = (w.topics * self.topic_scale).astype(np.float32)
        # A keyword list spanning several topics carries their vocabulary: those topics' texts
        # match it by construction and are its subjects, not the background it is judged
        # against (`calibrate`). (For a one-topic list leaving it out only lowers the bar a
        # little and costs quiet days: measured on hf-weeks keywords-only.)
        own = topic_w > 0
        broad = (self.topic_weight > 0) & (own.sum(axis=1) >= 2)
        self.own_topics = own & broad[:, None]
        # ‖query + topics·TV‖ without building the dense topic part: expand the square.
        q2 = np.asarray(self.query.multiply(self.query).sum(axis=1)).ravel()
        qt = np.asarray(
            ((self.query @ index.vectors.T).toarray() * self.topic_l2).sum(axis=1)
        ).ravel()
        tt = ((self.topic_l2 @ index.gram) * self.topic_l2).sum(axis=1)
        norm2 = q2 + 2 * self.topic_weight * qt + self.topic_weight**2 * tt
        self.norm = np.sqrt(np.maximum(norm2, 0)).astype(np.float32)
        self.inv_norm = np.where(self.norm > 1e-9, 1.0 / np.maximum(self.norm, 1e-9), 0.0).astype(
            np.float32
        )
        self.query_n = sp.csr_matrix(
            sp.diags(self.inv_norm) @ self.query, dtype=np.float32
        )  # rows of p's text part

    def __len__(self) -> int:
        return len(self.ids)
