"""Text features: tokens with light stemming, the tf-idf space over title and abstract, phrase n-grams."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer, TfidfVectorizer

from ..models import Entry

_TOKEN = re.compile(r"[a-z0-9]+")
# Longest first; each strips to a shared stem so "quantization", "quantized", "quantizer" and
# "quantize" meet, as do "decoding"/"decoder"/"decode" and "experts"/"expert".
_SUFFIXES = (
    "izations", "ization", "isation", "ational", "ations", "ation", "ators", "ator", "ative",
    "izers", "izer", "izing", "ized", "izes", "ize", "ating", "ated", "ates", "ate",
    "ings", "ing", "ers", "er", "ed", "ies", "es", "s", "e",
)
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | {"paper", "propose", "proposed", "approach", "method", "methods", "results", "show", "novel", "using", "based", "new", "existing", "work", "achieve", "achieves", "demonstrate"}


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A light, deterministic suffix-stripping stem of one lowercase token."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suf in _SUFFIXES:
        if word.endswith(suf) and len(word) - len(suf) >= 3:
            if (suf == "s" and word.endswith(("ss", "us", "is"))) or (suf == "ed" and word.endswith("eed")):
                return word
            if suf == "es" and not word.endswith(("sses", "ches", "shes", "xes", "zes")):
                return stem(word[:-1])
            return word[: -len(suf)]
    return word


_CAMEL = re.compile(r"(?<=[a-z]{2})(?=[A-Z])|(?<=[A-Za-z]{3})(?=[0-9])")


def words(text: str) -> list[str]:
    """Lowercase word tokens before stemming (the surface forms)."""
    return _TOKEN.findall(_CAMEL.sub(" ", text).lower())


def tokens(text: str) -> list[str]:
    """Stemmed lowercase word tokens; hyphens, punctuation and CamelCase split words.

    "LoRA-based" → lora, bas; "MixLoRA" → mix, lora; "MobileCLIP" → mobil, clip; acronyms such as
    LoRA, MoE or ViT stay whole.
    """
    return [stem(t) for t in words(text)]


def phrase_key(phrase: str) -> str:
    """The canonical form of a phrase: its stemmed tokens joined by spaces ("" if none)."""
    return " ".join(tokens(phrase))


def entry_text(e: Entry) -> str:
    """The text an entry is judged by: its title (twice, titles carry the topic) and abstract."""
    return f"{e.title}. {e.title}. {e.summary}"


def _content_ngrams(text: str) -> list[str]:
    """Analyzer for the tf-idf space: stemmed content words and their adjacent pairs."""
    words = [t for t in tokens(text) if t not in _STEMMED_STOP and not t.isdigit()]
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


_STEMMED_STOP = frozenset(stem(w) for w in STOP_WORDS) | STOP_WORDS


class TextSpace:
    """The tf-idf space fitted on a corpus: sublinear tf, stemmed word 1–2-grams, L2-normalized rows."""

    def __init__(self, min_df: int = 1, max_df: float = 0.5) -> None:
        self.vectorizer = TfidfVectorizer(analyzer=_content_ngrams, sublinear_tf=True, min_df=min_df,
                                          max_df=max_df, dtype=np.float32)
        self.surface: dict[str, str] = {}

    def fit(self, texts: Sequence[str]) -> TextSpace:
        """Learn the vocabulary and idf weights from `texts`."""
        texts = list(texts)
        if len(texts) < 2:
            self.vectorizer.set_params(max_df=1.0)
        self.vectorizer.fit(texts or ["empty"])
        seen: dict[str, Counter[str]] = {}
        for text in texts[:5000]:  # enough to name the stems
            for w in words(text):
                seen.setdefault(stem(w), Counter())[w] += 1
        self.surface = {s: c.most_common(1)[0][0] for s, c in seen.items()}
        return self

    def display(self, term: str) -> str:
        """A feature as a reader would write it: each stem by its most common surface form."""
        return " ".join(self.surface.get(part, part) for part in term.split(" "))

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        """Texts as rows of L2-normalized tf-idf vectors."""
        return sp.csr_matrix(self.vectorizer.transform(list(texts)), dtype=np.float32)

    @property
    def terms(self) -> np.ndarray:
        """The feature names, by column."""
        return self.vectorizer.get_feature_names_out()


def phrase_incidence(texts: Sequence[str], phrases: Sequence[str]) -> sp.csr_matrix:
    """Binary texts × phrases matrix: 1 where the phrase (a `phrase_key`) occurs on word boundaries."""
    if not phrases or not texts:
        return sp.csr_matrix((len(texts), len(phrases)), dtype=np.float32)
    longest = max(p.count(" ") + 1 for p in phrases)
    vocab: dict[str, int] = {}
    for p in phrases:
        vocab.setdefault(p, len(vocab))

    def grams(text: str) -> list[str]:
        toks = tokens(text)
        out = list(toks)
        for n in range(2, longest + 1):
            out += [" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1)]
        return out

    cv = CountVectorizer(analyzer=grams, vocabulary=vocab, binary=True, dtype=np.float32)
    unique = sp.csr_matrix(cv.transform(texts))
    if len(vocab) == len(phrases):
        return unique
    return sp.csr_matrix(unique[:, [vocab[p] for p in phrases]])  # a repeated phrase repeats its column
