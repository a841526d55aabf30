"""Matching: score every entry for every subscriber in one pass, select, and say why."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from ..models import Entry, Match, Subscriber


def _text(e: Entry) -> str:
    return f"{e.title}. {e.title}. {e.summary}"


def _phrase(p: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(p.lower()) + r"\w*", re.I)


class Matcher:
    """tf-idf profiles plus keywords; fit on a corpus, then `match` all subscribers at once."""

    def __init__(self) -> None:
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english", min_df=1)
        self.fitted = False

    def fit(self, corpus: Sequence[Entry]) -> Matcher:
        """Learn the vocabulary and its weights from recent entries."""
        self.vectorizer.fit([_text(e) for e in corpus] or ["empty"])
        self.fitted = True
        return self

    def match(
        self,
        entries: Sequence[Entry],
        subscribers: Sequence[Subscriber],
        *,
        delivered: Mapping[str, set[str]] | None = None,
        feedback: Mapping[str, Sequence[tuple[Entry, int]]] | None = None,
    ) -> dict[str, list[Match]]:
        """Every entry ranked for every subscriber, best first, `selected` marking what to send."""
        if not self.fitted:
            self.fit(entries)
        delivered = delivered or {}
        out: dict[str, list[Match]] = {}
        if not entries:
            return {s.id: [] for s in subscribers}
        X = self.vectorizer.transform([_text(e) for e in entries])
        profiles = [
            " ".join([s.interests.description, *s.interests.keywords, *s.interests.topics]) for s in subscribers
        ]
        P = normalize(self.vectorizer.transform(profiles))
        S = (X @ P.T).toarray()
        lowered = [f"{e.title} {e.summary}".lower() for e in entries]
        for j, sub in enumerate(subscribers):
            kws = [(k, _phrase(k)) for k in sub.interests.keywords]
            excl = [_phrase(k) for k in sub.interests.exclude]
            authors = {a.lower() for a in sub.interests.authors}
            scored: list[Match] = []
            for i, e in enumerate(entries):
                why = [f"keyword: {k}" for k, pat in kws if pat.search(lowered[i])]
                score = float(S[i, j]) + 0.1 * len(why)
                selected = score >= 0.12
                if any(a.lower() in authors for a in e.authors):
                    why.insert(0, "by an author you follow")
                    selected, score = True, score + 1.0
                if any(p.search(lowered[i]) for p in excl):
                    selected = False
                if e.id in delivered.get(sub.id, set()):
                    selected = False
                scored.append(Match(e.id, round(score, 4), selected, tuple(why)))
            scored.sort(key=lambda m: -m.score)
            n = 0
            final: list[Match] = []
            for m in scored:
                if m.selected:
                    n += 1
                    if n > sub.max_items:
                        m = Match(m.entry_id, m.score, False, m.why, m.topic)
                final.append(m)
            out[sub.id] = final
        return out


def known_topics() -> set[str] | None:
    """Topic slugs subscribers may follow (None: no taxonomy loaded, accept any)."""
    return None


__all__ = ["Matcher", "known_topics", "np"]
