"""The topic taxonomy: research topics with a slug, a name, a description and their vocabulary."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..errors import ConfigError
from .features import TextSpace, content_words, phrase_key

SHIPPED = Path(__file__).with_name("topics.toml")


@dataclass(frozen=True, slots=True)
class Topic:
    """One research topic: what subscribers follow and digests group by."""

    slug: str
    name: str
    description: str
    vocabulary: tuple[str, ...]

    @property
    def text(self) -> str:
        """The topic as text for the feature space: name, description and vocabulary."""
        return ". ".join([self.name, self.description, ", ".join(self.vocabulary)])


def _read(path: Path) -> list[Topic]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 ({e.reason} at byte {e.start}); save it as UTF-8"
        ) from e
    except OSError as e:
        raise ConfigError(
            f"{path}: cannot read the topic file ({e.strerror}); check the path"
        ) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix the syntax") from e
    items = raw.get("topic", [])
    if not isinstance(items, list):
        raise ConfigError(f"{path}: 'topic' must be an array of tables; write [[topic]] blocks")
    out: list[Topic] = []
    for n, t in enumerate(items, 1):
        where = f"{path}: topic #{n}"
        if not isinstance(t, dict):
            raise ConfigError(
                f"{where} is not a table; write [[topic]] with slug, name, description, vocabulary"
            )
        slug, name, desc = t.get("slug"), t.get("name"), t.get("description", "")
        vocab = t.get("vocabulary", [])
        if not isinstance(slug, str) or not slug.strip() or " " in slug:
            raise ConfigError(
                f'{where}: \'slug\' must be a word such as "quantization"; add slug = "…"'
            )
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where} ({slug}): 'name' is missing; add name = \"…\"")
        if not isinstance(desc, str):
            raise ConfigError(f"{where} ({slug}): 'description' must be a string")
        if (
            not isinstance(vocab, list)
            or not vocab
            or not all(isinstance(v, str) and v.strip() for v in vocab)
        ):
            raise ConfigError(
                f'{where} ({slug}): \'vocabulary\' must be a non-empty list of phrases; write vocabulary = ["…", "…"]'
            )
        unknown = set(t) - {"slug", "name", "description", "vocabulary"}
        if unknown:
            raise ConfigError(
                f"{where} ({slug}): unknown key(s) {', '.join(sorted(unknown))}; the keys are slug, name, description, vocabulary"
            )
        out.append(Topic(slug.strip(), name.strip(), desc.strip(), tuple(v.strip() for v in vocab)))
    return out


def load_topics(extra: str | Path | None = None) -> list[Topic]:
    """The shipped taxonomy, extended (or overridden by slug) by the file `extra` when given
    (callers pass `Settings.topics_file`: the topics.toml next to digestbot.toml, never one in
    whatever folder the command runs from)."""
    topics = {t.slug: t for t in _read(SHIPPED)}
    if extra:
        for t in _read(Path(extra)):
            topics[t.slug] = t
    return list(topics.values())


def known_topics(extra: str | Path | None = None) -> set[str]:
    """The slugs subscribers may follow in `interests.topics`."""
    return {t.slug for t in load_topics(extra)}


def _as_term(key: str) -> str:
    """A phrase key as the space's feature it equals, if it is one or two content words."""
    words = content_words(key.split(" "))
    return " ".join(words) if 1 <= len(words) <= 2 else ""


class TopicIndex:
    """The taxonomy placed in a fitted text space: topic vectors and each phrase's topics."""

    def __init__(self, topics: list[Topic], space: TextSpace) -> None:
        self.topics = topics
        self.names = [t.name for t in topics]
        self.vectors = space.transform([t.text for t in topics])  # topics × terms
        self._dense: np.ndarray | None = None
        owners: dict[str, set[int]] = {}
        for ti, t in enumerate(topics):
            for v in t.vocabulary:
                key = phrase_key(v)
                if key:
                    owners.setdefault(key, set()).add(ti)
        self.owners = owners
        self.phrases = sorted(owners)
        rows, cols = (
            zip(*((i, ti) for i, p in enumerate(self.phrases) for ti in sorted(owners[p])))
            if owners
            else ((), ())
        )
        self.phrase_topics = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(self.phrases), len(topics))
        )
        self.gram = (self.vectors @ self.vectors.T).toarray()  # topic · topic
        # Phrases that are features of the space (one or two content words), as term → topics.
        trows, tcols, tvals = [], [], []
        for p, tis in owners.items():
            c = space.column(_as_term(p))
            if c is not None:
                for ti in tis:
                    trows.append(c)
                    tcols.append(ti)
                    tvals.append(1.0 / len(tis))
        self.term_topics = sp.csr_matrix(
            (np.array(tvals, np.float32), (trows, tcols)), shape=(len(space.idf), len(topics))
        )

    def dense_vectors(self) -> np.ndarray:
        """The topic vectors as a dense array (for reasons; made on first use)."""
        dense = self._dense
        if dense is None:
            dense = self._dense = np.asarray(self.vectors.toarray())
        return dense

    def weights_for(self, phrases: Sequence[str], weight: float = 1.0) -> np.ndarray:
        """Topic weights implied by phrases (`phrase_key`s): each phrase splits `weight` over its topics."""
        w = np.zeros(len(self.topics), np.float32)
        for p in phrases:
            owners = self.owners.get(p)
            if owners:
                for ti in owners:
                    w[ti] += weight / len(owners)
        return w

    def weights_for_each(self, phrases: Sequence[str]) -> np.ndarray:
        """phrases × topics: the topic weights each phrase gives (see `weights_for`)."""
        out = np.zeros((len(phrases), len(self.topics)), np.float32)
        for i, p in enumerate(phrases):
            owners = self.owners.get(p)
            if owners:
                out[i, list(owners)] = 1.0 / len(owners)
        return out

    def weights_in(self, X: sp.csr_matrix, weight: float = 1.0) -> np.ndarray:
        """Topic weights implied by texts given as rows of the space (their one- and two-word phrases)."""
        present = sp.csr_matrix(X, copy=True)
        present.data[:] = 1.0
        out: np.ndarray = (weight * (present @ self.term_topics)).toarray().astype(np.float32)
        return out

    def entry_topics(
        self, X: sp.csr_matrix, hits: sp.csr_matrix, saturation: float = 2.0, unsure: float = 0.02
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per entry: a topic distribution (rows sum to 1) and saturated vocabulary evidence, both entries × topics.

        The distribution mixes cosine similarity to each topic with how many of its phrases occur,
        squared to sharpen it, so a speech paper that mentions "diffusion" is still mostly speech.
        """
        evidence = 1.0 - np.exp(-(hits @ self.phrase_topics).toarray() / saturation)
        sim = (X @ self.vectors.T).toarray()
        a = (sim + 0.5 * evidence) ** 2
        a /= a.sum(axis=1, keepdims=True) + unsure  # weak evidence stays a weak distribution
        return a.astype(np.float32), evidence.astype(np.float32)
