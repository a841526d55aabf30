"""Words: tokens with light stemming, stop words, phrase keys, and the process-wide word table
that analyzes each distinct raw word once (`_WORD_TABLE`: stems as ids, for `features`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+")
# Longest first; each strips to a shared stem so "quantization", "quantized", "quantizer" and
# "quantize" meet, as do "decoding"/"decoder"/"decode" and "experts"/"expert".
_SUFFIXES = (
    "izations",
    "ization",
    "isation",
    "ational",
    "ations",
    "ation",
    "ators",
    "ator",
    "ative",
    "izers",
    "izer",
    "izing",
    "ized",
    "izes",
    "ize",
    "ating",
    "ated",
    "ates",
    "ate",
    "ings",
    "ing",
    "ers",
    "er",
    "ed",
    "ies",
    "es",
    "s",
    "e",
)
# The -ize family keeps its "iz": "tokenization", "tokenizer", "tokenize" meet, and do not fall
# in with "token" ("optimization"/"optimizer" with each other, not "optimal"; "localization"
# not with "local"); British -isation meets American -ization.
_IZE = frozenset(
    ("izations", "ization", "isation", "izers", "izer", "izing", "ized", "izes", "ize")
)
# scikit-learn's ENGLISH_STOP_WORDS (1.9; BSD-licensed), written out so that matching does not
# import scikit-learn (0.7 s); tests/test_one_pass.py checks they are the same.
_SKLEARN_STOP = """
    a about above across after afterwards again against all almost alone along already also
    although always am among amongst amoungst amount an and another any anyhow anyone anything
    anyway anywhere are around as at back be became because become becomes becoming been
    before beforehand behind being below beside besides between beyond bill both bottom but by
    call can cannot cant co con could couldnt cry de describe detail do done down due during
    each eg eight either eleven else elsewhere empty enough etc even ever every everyone
    everything everywhere except few fifteen fifty fill find fire first five for former
    formerly forty found four from front full further get give go had has hasnt have he hence
    her here hereafter hereby herein hereupon hers herself him himself his how however hundred
    i ie if in inc indeed interest into is it its itself keep last latter latterly least less
    ltd made many may me meanwhile might mill mine more moreover most mostly move much must my
    myself name namely neither never nevertheless next nine no nobody none noone nor not
    nothing now nowhere of off often on once one only onto or other others otherwise our ours
    ourselves out over own part per perhaps please put rather re same see seem seemed seeming
    seems serious several she should show side since sincere six sixty so some somehow someone
    something sometime sometimes somewhere still such system take ten than that the their them
    themselves then thence there thereafter thereby therefore therein thereupon these they
    thick thin third this those though three through throughout thru thus to together too top
    toward towards twelve twenty two un under until up upon us very via was we well were what
    whatever when whence whenever where whereafter whereas whereby wherein whereupon wherever
    whether which while whither who whoever whole whom whose why will with within without
    would yet you your yours yourself yourselves
"""
_ENGLISH_STOP_WORDS = frozenset(_SKLEARN_STOP.split())
STOP_WORDS = _ENGLISH_STOP_WORDS | {
    "paper",
    "propose",
    "proposed",
    "approach",
    "method",
    "methods",
    "results",
    "show",
    "novel",
    "using",
    "based",
    "new",
    "existing",
    "work",
    "achieve",
    "achieves",
    "demonstrate",
}


# The suffixes by their last letter, longest first as above: a word is tried only against those
# it can end with (the same first match as trying them all).
_BY_LAST = {c: tuple(x for x in _SUFFIXES if x[-1] == c) for c in {x[-1] for x in _SUFFIXES}}


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A light, deterministic suffix-stripping stem of one lowercase token."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suf in _BY_LAST.get(word[-1], ()):
        if word.endswith(suf) and len(word) - len(suf) >= 3:
            if (suf == "s" and word.endswith(("ss", "us", "is"))) or (
                suf == "ed" and word.endswith("eed")
            ):
                return word
            if suf == "es" and not word.endswith(("sses", "ches", "shes", "xes", "zes")):
                return stem(word[:-1])
            if suf in _IZE:  # "tokenization" meets "tokenizer", not "token"
                return word[: -len(suf)] + "iz"
            return word[: -len(suf)]
    return word


_RAW = re.compile(r"[A-Za-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z]{2})(?=[A-Z])|(?<=[A-Za-z]{3})(?=[0-9])")


_WORDS: dict[str, tuple[str, ...]] = {}  # raw word → lowercase parts (a plain dict: the hot path)
_STEMS: dict[str, tuple[str, ...]] = {}  # raw word → stems of its parts


def _parts(raw: str) -> tuple[str, ...]:
    """One raw word's lowercase parts: CamelCase and letters-then-digits split; cached."""
    parts = tuple(_CAMEL.sub(" ", raw).lower().split())
    if len(_WORDS) < 1_000_000:
        _WORDS[raw] = parts
        _STEMS[raw] = tuple(stem(p) for p in parts)
    return parts


def _stems(raw: str) -> tuple[str, ...]:
    return _STEMS.get(raw) or tuple(stem(p) for p in _parts(raw))


def words(text: str) -> list[str]:
    """Lowercase word tokens before stemming (the surface forms)."""
    get = _WORDS.get
    return [p for w in _RAW.findall(text) for p in (get(w) or _parts(w))]


def _split(raw: str) -> tuple[str, ...]:
    return _WORDS.get(raw) or _parts(raw)


def tokens(text: str) -> list[str]:
    """Stemmed lowercase word tokens; hyphens, punctuation and CamelCase split words.

    "LoRA-based" → lora, bas; "MixLoRA" → mix, lora; "MobileCLIP" → mobil, clip; acronyms such as
    LoRA, MoE or ViT stay whole.
    """
    get = _STEMS.get
    return [s for w in _RAW.findall(text) for s in (get(w) or _stems(w))]


def phrase_key(phrase: str) -> str:
    """The canonical form of a phrase: its stemmed tokens joined by spaces ("" if none)."""
    return " ".join(tokens(phrase))


def content_words(stems: list[str]) -> list[str]:
    """Stems without stop words and bare numbers."""
    return [t for t in stems if t not in _STEMMED_STOP and not t.isdigit()]


_STEMMED_STOP = frozenset(stem(w) for w in STOP_WORDS) | STOP_WORDS


_SEP = "\x00"  # separates texts in one joined string
# UTF-8 bytes: ASCII punctuation and spaces → space (they split words, as _RAW does); the
# separator and every byte of a non-ASCII character stay (_RAW splits those within a word).
_PUNCT_TO_SPACE = bytes(c if c == 0 or c > 127 or chr(c).isalnum() else 32 for c in range(256))
_SEP_BYTES = _SEP.encode()
_KEY = 1 << 31  # bigram key = first stem id · _KEY + second stem id


class _Stems:
    """Per raw word, its stems as ids: where they start in `flat` and how many."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.lengths: list[int] = []
        self.flat: list[int] = []
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._arrays is None:
            self._arrays = (
                np.array(self.starts, np.int64),
                np.array(self.lengths, np.int64),
                np.array(self.flat, np.int64),
            )
        return self._arrays


class _Words:
    """Every raw word seen, analyzed once: its stems and its content stems as ids (a
    process-wide table)."""

    def __init__(self) -> None:
        self.word_ids: dict[bytes, int] = {}
        self.stem_ids: dict[str, int] = {}
        self.names: list[str] = []  # stem id → stem
        self.content = _Stems()  # without stop words and bare numbers (the tf-idf's words)
        self.every = _Stems()  # all of them (what phrases are matched on)
        self.forms = _Stems()  # the lowercase words before stemming (`words`), as form ids
        self.form_ids: dict[str, int] = {}
        self.form_names: list[str] = []  # form id → word
        self.form_stem: list[int] = []  # form id → the id of its stem
        self._recent: dict[str, np.ndarray] = {}  # the last texts read (joined) → word ids
        self._add([_SEP_BYTES])

    @property
    def n_stems(self) -> int:
        """How many distinct stems have ids."""
        return len(self.stem_ids)

    def stem_id(self, s: str) -> int:
        """The id of a stem (new stems get the next id)."""
        i = self.stem_ids.setdefault(s, len(self.stem_ids))
        if i == len(self.names):
            self.names.append(s)
        return i

    def _add(self, raws: Iterable[bytes]) -> None:
        """Analyze new raw words: each one's stems, content stems and lowercase words as ids."""
        word_ids, stem_ids, names = self.word_ids, self.stem_ids, self.names
        form_ids, form_names, form_stem = self.form_ids, self.form_names, self.form_stem
        c, e, f_ = self.content, self.every, self.forms
        for raw in raws:
            if raw.isalpha() and raw.islower():  # ASCII lowercase letters: one word, itself
                parts: Sequence[str] = (raw.decode("ascii"),)
            else:  # `raw` may hold non-ASCII characters, which split words like everywhere else
                text = raw.decode("utf-8", "surrogatepass")
                parts = [] if text == _SEP else [p for w in _RAW.findall(text) for p in _split(w)]
            word_ids[raw] = len(word_ids)
            every: list[int] = []
            content: list[int] = []
            forms: list[int] = []
            for p in parts:
                t = stem(p)  # as `tokens`: `_stems` of each word
                i = stem_ids.get(t)
                if i is None:
                    i = stem_ids[t] = len(names)
                    names.append(t)
                f = form_ids.get(p)
                if f is None:
                    f = form_ids[p] = len(form_names)
                    form_names.append(p)
                    form_stem.append(i)
                every.append(i)
                forms.append(f)
                if t not in _STEMMED_STOP and not t.isdigit():  # as `content_words`
                    content.append(i)
            c.starts.append(len(c.flat))  # `_Stems`: where each word's ids start, how many
            c.lengths.append(len(content))
            c.flat += content
            e.starts.append(len(e.flat))
            e.lengths.append(len(every))
            e.flat += every
            f_.starts.append(len(f_.flat))
            f_.lengths.append(len(forms))
            f_.flat += forms
        c._arrays = e._arrays = f_._arrays = None

    def surface(self, texts: Sequence[str]) -> dict[str, str]:
        """Each stem of `texts` → its most common word in them (the first seen among equals):
        what counting `words(" ".join(texts))` word by word gives, in array passes."""
        _, forms = self._ids(texts, self.forms)
        counts = np.bincount(forms, minlength=len(self.form_names))
        first = np.zeros(len(counts), np.int64)
        at = _first_of_each(forms)  # the first position of each form (a stable sort)
        first[forms[at]] = at
        seen = np.flatnonzero(counts)
        stems = np.asarray(self.form_stem, np.int64)[seen]
        order = np.lexsort((first[seen], -counts[seen], stems))
        keep = np.ones(len(order), bool)
        keep[1:] = stems[order][1:] != stems[order][:-1]
        names, words = self.names, self.form_names
        return {
            names[s]: words[w]
            for s, w in zip(stems[order][keep].tolist(), seen[order][keep].tolist(), strict=True)
        }

    def content_stems(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(document index, stem id) of every content word of `texts`, in order."""
        return self._ids(texts, self.content)

    def all_stems(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(document index, stem id) of every token of `texts` (`tokens`), in order."""
        return self._ids(texts, self.every)

    def _ids(self, texts: Sequence[str], which: _Stems) -> tuple[np.ndarray, np.ndarray]:
        joined = f" {_SEP} ".join(t.replace(_SEP, " ") if _SEP in t else t for t in texts)
        wid = self._recent.get(joined)  # one pass reads the same texts several times
        if wid is None:
            # Words between ASCII punctuation and spaces, as bytes (a fast split; a word's _RAW
            # runs are the same either way); each separator is a word of its own.
            raw = joined.encode("utf-8", "surrogatepass").translate(_PUNCT_TO_SPACE).split()
            self._add(set(raw).difference(self.word_ids))
            wid = np.fromiter(map(self.word_ids.__getitem__, raw), np.int64, len(raw))
            if len(self._recent) >= 4:  # word ids never change: only the oldest is dropped
                del self._recent[next(iter(self._recent))]
            self._recent[joined] = wid
        starts, lengths, flat = which.arrays()
        doc_of_word = np.cumsum(wid == self.word_ids[_SEP_BYTES])  # the separator has no stems
        n = lengths[wid]
        total = int(n.sum())
        offsets = np.repeat(starts[wid] - (np.cumsum(n) - n), n) + np.arange(total)
        return np.repeat(doc_of_word, n), flat[offsets]


_WORD_TABLE = _Words()


def _first_of_each(keys: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each distinct value of `keys` (in sorted order)."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    keep = np.ones(len(k), bool)
    keep[1:] = k[1:] != k[:-1]
    return order[keep]


def _unique_inverse(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(keys, return_inverse=True)` by one sort."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    new = np.ones(len(k), bool)
    new[1:] = k[1:] != k[:-1]
    inverse = np.empty(len(k), np.int64)
    inverse[order] = np.cumsum(new) - 1
    return k[new], inverse
