"""Text features: the tf-idf space over title and abstract, phrase n-grams (words: `words`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, overload

import numpy as np
import scipy.sparse as sp

from ..models import Entry
from .words import (
    _KEY,
    _WORD_TABLE,
    STOP_WORDS,
    _first_of_each,
    _unique_inverse,
    content_words,
    phrase_key,
    stem,
    tokens,
    words,
)

if TYPE_CHECKING:  # scikit-learn is imported only where the vectorizer itself is needed
    from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = [
    "STOP_WORDS",
    "TextSpace",
    "content_words",
    "entry_text",
    "phrase_incidence",
    "phrase_key",
    "stem",
    "tokens",
    "words",
]


def entry_text(e: Entry) -> str:
    """The text an entry is judged by: its title (twice, titles carry the topic) and abstract.

    A Hugging Face entry may also carry `ai_keywords` and an `ai_summary`; they join the text
    when present (arXiv and RSS entries have neither, and need neither).
    """
    text = f"{e.title}. {e.title}. {e.summary}"
    keywords = e.extra.get("ai_keywords")
    if isinstance(keywords, list) and keywords:
        text += " . " + " . ".join(str(k) for k in keywords)
    summary = e.extra.get("ai_summary")
    if isinstance(summary, str) and summary:
        text += " . " + summary
    return text


def _content_ngrams(text: str) -> list[str]:
    """Analyzer for the tf-idf space: stemmed content words and their adjacent pairs."""
    words = content_words(tokens(text))
    return words + [f"{a} {b}" for a, b in pairwise(words)]


class TextSpace:
    """The tf-idf space fitted on a corpus: sublinear tf, stemmed word 1–2-grams, L2-normalized rows."""

    def __init__(self, min_df: int = 1, max_df: float = 1.0) -> None:
        self.min_df, self.max_df = min_df, max_df
        self._vectorizer: TfidfVectorizer | None = None
        self._vocabulary: dict[str, int] | None = {}  # term → column (None: made on first use)
        self._surface: dict[str, str] | None = {}
        self._named: list[str] = []  # the texts the surface forms are counted in
        self.idf = np.zeros(0, np.float32)
        self._terms: Sequence[str] | None = None
        self._col_stems = np.zeros((0, 2), np.int64)  # column → (stem id, stem id or -1)
        self._counted = False  # fitted by counting (`_fit_counts`), not by the vectorizer
        self._uni = np.zeros(0, np.int64)
        self._bi_keys = self._bi_cols = np.zeros(0, np.int64)

    def fit(self, texts: Sequence[str]) -> TextSpace:
        """Learn the vocabulary and idf weights from `texts`.

        What scikit-learn's `TfidfVectorizer.fit` learns with this space's analyzer — the same
        vocabulary, columns and idf — counted with numpy over the word table (`_fit_counts`);
        the vectorizer itself fits only in the cases that path leaves to it (see there).
        """
        texts = list(texts)
        self._terms = None
        self._vectorizer = None
        self._counted = False
        if not self._fit_counts(texts):
            if len(texts) < 2:
                self.vectorizer.set_params(max_df=1.0)
            self.vectorizer.fit(texts or ["empty"])
            self._vocabulary = dict(self.vectorizer.vocabulary_)
            self.idf = self.vectorizer.idf_.astype(np.float32)
            self._index_vocabulary()
        self._named, self._surface = texts[:5000], None  # enough to name the stems
        return self

    @property
    def vocabulary(self) -> dict[str, int]:
        """Term → column (after a counted fit, made on first use: no plan needs it)."""
        vocabulary = self._vocabulary
        if vocabulary is None:
            vocabulary = self._vocabulary = {t: c for c, t in enumerate(self.terms)}
        return vocabulary

    @property
    def surface(self) -> dict[str, str]:
        """Each stem's most common surface form in the fitted texts (the first seen among
        equals), to name it; counted on first use."""
        surface = self._surface
        if surface is None:
            surface = self._surface = _WORD_TABLE.surface(self._named)
        return surface

    def column(self, term: str) -> int | None:
        """The column of a term ("stem" or "stem stem"), None if it is not a feature."""
        if self._vocabulary is not None:
            return self._vocabulary.get(term)
        ids = [_WORD_TABLE.stem_ids.get(p, -1) for p in term.split(" ")]
        if len(ids) == 1 and 0 <= ids[0] < len(self._uni) and self._uni[ids[0]] >= 0:
            return int(self._uni[ids[0]])
        if len(ids) == 2 and min(ids) >= 0 and len(self._bi_keys):
            key = ids[0] * _KEY + ids[1]
            at = min(int(np.searchsorted(self._bi_keys, key)), len(self._bi_keys) - 1)
            if self._bi_keys[at] == key:
                return int(self._bi_cols[at])
        return None

    def _fit_counts(self, texts: list[str]) -> bool:
        """Fit the vectorizer's vocabulary and idf by counting (False: left to the vectorizer).

        The vocabulary: every stemmed content word and adjacent pair (`_content_ngrams`),
        columns in the order of the terms' text; idf = ln((1 + n) / (1 + df)) + 1, in float32
        as scikit-learn computes it. Left to the vectorizer: fewer than two texts, a document
        frequency limit, or nothing to learn (it raises its own error).
        """
        if len(texts) < 2 or self.min_df != 1 or self.max_df != 1.0:
            return False
        docs, stems = _WORD_TABLE.content_stems(texts)
        n_stems = _WORD_TABLE.n_stems + 1
        uni_df = np.bincount(stems[_first_of_each(docs * n_stems + stems)], minlength=n_stems)
        uni = np.flatnonzero(uni_df)
        same = docs[1:] == docs[:-1]
        pairs, which = _unique_inverse(stems[:-1][same] * _KEY + stems[1:][same])
        per_doc = docs[:-1][same] * max(len(pairs), 1) + which
        bi_df = np.bincount(which[_first_of_each(per_doc)], minlength=len(pairs))
        if not len(uni) and not len(pairs):
            return False
        # Columns in the order of the terms' text, without making the text: stems are runs
        # of [a-z0-9], all above the space, so "a" < "a …" < "ab …" whenever "a" < "ab", and
        # comparing "a", "a b", "c", "c d" as strings is comparing (a, -1), (a, b), (c, -1),
        # (c, d) with each stem by its rank among the stems in use (every stem of a pair is a
        # unigram too). Proof: two terms with different first stems a < c differ first inside
        # both stems (the order of a and c), or a is a prefix of c, and then the first term
        # ends or has its space where the second has a letter or digit; with the same first
        # stem, a unigram is a prefix of the bigram, and two bigrams compare as their second
        # stems do, as above. Tested against sorting the text (tests/test_one_pass.py).
        names = _WORD_TABLE.names
        rank = np.zeros(n_stems, np.int64)
        rank[uni[sorted(range(len(uni)), key=[names[i] for i in uni.tolist()].__getitem__)]] = (
            np.arange(len(uni))
        )
        first = np.concatenate([uni, pairs // _KEY])
        second = np.concatenate([np.full(len(uni), -1, np.int64), pairs % _KEY])
        order = np.argsort(
            rank[first] * (len(uni) + 1) + np.where(second >= 0, rank[second] + 1, 0)
        )
        column = np.empty(len(order), np.int64)
        column[order] = np.arange(len(order))
        df = np.concatenate([uni_df[uni], bi_df]).astype(np.float32)[order]
        df += 1.0
        idf = np.full_like(df, len(texts) + 1, dtype=np.float32)
        idf /= df
        np.log(idf, out=idf)
        idf += 1.0
        self._vocabulary, self._counted = None, True
        self.idf = idf
        self._col_stems = np.stack([first[order], second[order]], axis=1)
        self._uni = np.full(n_stems, -1, np.int64)
        self._uni[uni] = column[: len(uni)]
        self._bi_keys, self._bi_cols = pairs, column[len(uni) :]
        return True

    @property
    def vectorizer(self) -> TfidfVectorizer:
        """scikit-learn's `TfidfVectorizer` with this space's analyzer (and, after a counted fit,
        its vocabulary and idf): made on first use, as importing scikit-learn takes 0.7 s and the
        counted fit and `transform` do without it."""
        if self._vectorizer is None:
            from sklearn.feature_extraction.text import TfidfVectorizer

            v = TfidfVectorizer(
                analyzer=_content_ngrams,
                sublinear_tf=True,
                min_df=self.min_df,
                max_df=self.max_df,
                dtype=np.float32,
            )
            if self._counted:
                v.vocabulary_, v.idf_ = dict(self.vocabulary), self.idf
            self._vectorizer = v
        return self._vectorizer

    def display(self, term: str) -> str:
        """A feature as a reader would write it: each stem by its most common surface form."""
        return " ".join(self.surface.get(part, part) for part in term.split(" "))

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        """Texts as rows of L2-normalized tf-idf vectors, exactly as the fitted vectorizer makes them.

        Vectorized: each distinct raw word is analyzed once (`_Words`), then the unigrams and
        bigrams of all texts are looked up with numpy, not one Python call per feature.
        """
        texts = list(texts)
        n_terms = len(self.idf)
        docs, stems = _WORD_TABLE.content_stems(texts)
        uni = (
            self._uni[np.minimum(stems, len(self._uni) - 1)]
            if len(self._uni)
            else np.full(len(stems), -1)
        )
        uni[stems >= len(self._uni)] = -1
        same = docs[1:] == docs[:-1]
        keys = stems[:-1][same] * _KEY + stems[1:][same]
        pos = np.searchsorted(self._bi_keys, keys)
        pos[pos >= len(self._bi_keys)] = 0
        found = self._bi_keys[pos] == keys if len(self._bi_keys) else np.zeros(len(keys), bool)
        rows = np.concatenate([docs[uni >= 0], docs[:-1][same][found]])
        cols = np.concatenate([uni[uni >= 0], self._bi_cols[pos[found]]])
        flat, counts = np.unique(rows.astype(np.int64) * max(n_terms, 1) + cols, return_counts=True)
        r, c = flat // max(n_terms, 1), (flat % max(n_terms, 1)).astype(np.int32)
        data = (1.0 + np.log(counts.astype(np.float32))) * self.idf[c]  # sublinear tf × idf
        m = sp.csr_matrix((data, (r, c)), shape=(len(texts), n_terms), dtype=np.float32)
        return l2_rows(m)

    def _index_vocabulary(self) -> None:
        """Arrays from stem ids to the fitted unigram and bigram columns, for `transform`."""
        uni: dict[int, int] = {}
        bi: dict[int, int] = {}
        for term, col in self.vocabulary.items():
            parts = [_WORD_TABLE.stem_id(p) for p in term.split(" ")]
            if len(parts) == 1:
                uni[parts[0]] = col
            else:
                bi[parts[0] * _KEY + parts[1]] = col
        self._uni = np.full(_WORD_TABLE.n_stems + 1, -1, np.int64)
        for k, v in uni.items():
            self._uni[k] = v
        order = sorted(bi)
        self._bi_keys = np.array(order, np.int64)
        self._bi_cols = np.array([bi[k] for k in order], np.int64)

    @property
    def terms(self) -> Sequence[str]:
        """The feature names, by column (after a counted fit, each made when it is read)."""
        terms = self._terms
        if terms is None:
            if self._counted:
                terms = _Terms(self._col_stems)
            else:
                terms = list(self.vectorizer.get_feature_names_out())
            self._terms = terms
        return terms


class _Terms(Sequence[str]):
    """The counted fit's feature names by column, from their stem ids, made one at a time."""

    def __init__(self, col_stems: np.ndarray) -> None:
        self._first, self._second = col_stems[:, 0].tolist(), col_stems[:, 1].tolist()

    def __len__(self) -> int:
        return len(self._first)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        names, b = _WORD_TABLE.names, self._second[i]
        return names[self._first[i]] if b < 0 else f"{names[self._first[i]]} {names[b]}"


def l2_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """`m` (float32 CSR) with unit rows, bit for bit as scikit-learn's `normalize` makes them.

    As its `inplace_csr_row_normalize_l2`: each row's float32 squares summed in order in
    float64 (position j of every row at once, rows sorted by length), each value divided by
    the square root in float64; all-zero rows are left as they are.
    """
    data = m.data
    sq = (data * data).astype(np.float64)
    lengths = np.diff(m.indptr)
    order = np.argsort(-lengths, kind="stable")
    by_length = lengths[order]
    starts = m.indptr[:-1][order]
    total = np.zeros(len(order))
    longest = int(lengths.max(initial=0))
    alive = np.searchsorted(-by_length, -np.arange(longest), side="left")  # rows longer than j
    for j in range(longest):
        a = alive[j]
        total[:a] += sq[starts[:a] + j]
    norm = np.ones(len(order))
    norm[order] = np.where(total > 0.0, np.sqrt(total), 1.0)
    out = sp.csr_matrix((data.astype(np.float64), m.indices, m.indptr), shape=m.shape)
    out.data /= np.repeat(norm, lengths)
    return sp.csr_matrix(out, dtype=np.float32)


def phrase_incidence(texts: Sequence[str], phrases: Sequence[str]) -> sp.csr_matrix:
    """Binary texts × phrases matrix: 1 where the phrase (a `phrase_key`) occurs on word boundaries,
    i.e. its stems are a run of the text's `tokens`."""
    index: dict[str, int] = {}
    for p in phrases:
        if p and p not in index:
            index[p] = len(index)
    rows, cols = _occurrences(texts, list(index))
    flat = np.unique(rows * max(len(index), 1) + cols)
    unique = sp.csr_matrix(
        (np.ones(len(flat), np.float32), (flat // max(len(index), 1), flat % max(len(index), 1))),
        shape=(len(texts), len(index)),
    )
    if len(index) == len(phrases):
        return unique
    pick = [index.get(p, -1) for p in phrases]
    out = sp.csr_matrix(unique[:, [max(c, 0) for c in pick]])
    if -1 in pick:  # an empty phrase matches nothing
        out = sp.csr_matrix(out.multiply(np.array([c >= 0 for c in pick], np.float32)[None, :]))
    return out


def _occurrences(texts: Sequence[str], keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(text, key) for every key (a `phrase_key`) occurring in a text, perhaps repeated.

    All texts' tokens as stem ids in one array; the m-token runs that begin some key are given
    one code per distinct run (texts' and keys' together), m = 1, 2, …, keeping only the runs
    that may still grow into a key: array passes, however many keys there are.
    """
    docs, toks = _WORD_TABLE.all_stems(texts)
    parts = [k.split(" ") for k in keys]
    lens = np.fromiter(map(len, parts), np.int64, len(parts))
    flat = np.fromiter((_WORD_TABLE.stem_id(t) for p in parts for t in p), np.int64)
    first = np.cumsum(lens) - lens  # where each key's stems start in `flat`
    width = _WORD_TABLE.n_stems + 1
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    alive = np.arange(len(toks))  # text positions whose run may be a key's beginning
    code_t = toks.copy()  # the code of the m-token run starting at each live position
    code_p = flat[first] if len(keys) else np.zeros(0, np.int64)  # each key's first m stems
    for m in range(1, int(lens.max(initial=0)) + 1):
        done = np.flatnonzero(lens == m)
        if len(done):  # keys of m tokens: distinct keys, distinct codes
            order = np.argsort(code_p[done])
            codes = code_p[done][order]
            at = np.minimum(np.searchsorted(codes, code_t[alive]), len(codes) - 1)
            hit = codes[at] == code_t[alive]
            rows.append(docs[alive[hit]])
            cols.append(done[order[at[hit]]])
        longer = np.flatnonzero(lens > m)
        if not len(longer):
            break
        ok = np.isin(code_t[alive], code_p[longer]) & (alive + m < len(toks))
        alive = alive[ok]
        alive = alive[docs[alive + m] == docs[alive]]  # runs end at the end of their text
        grown_t = code_t[alive] * width + toks[alive + m]
        grown_p = code_p[longer] * width + flat[first[longer] + m]
        _, code = np.unique(np.concatenate([grown_t, grown_p]), return_inverse=True)
        code_t = np.zeros(len(toks), np.int64)
        code_t[alive] = code[: len(alive)]
        code_p = np.full(len(keys), -1, np.int64)
        code_p[longer] = code[len(alive) :]
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)
