"""The fitted matcher, kept between runs of one process until the corpus changes.

Fitting the tf-idf space on the corpus (`corpus_days` of entries) is the one step of a plan
that does not depend on who is due; the long-running scheduler plans many times a day over the
same corpus. `FittedModel` keeps the last fitted `Matcher` with the store's fingerprint of the
corpus (`Store.corpus_fingerprint`: how many entries, the latest change among them) and fits
again only when that changes — after a fetch that stored something new or enriched an entry,
or when an entry leaves the window. The results are the same as a fresh fit's: a `Matcher`
keeps nothing of one `match` call for the next.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from ..config import Settings
from ..match import Matcher
from ..models import Entry
from ..store import Store


class FittedModel:
    """One process's fitted `Matcher`, refitted when the corpus's fingerprint changes.

    `fits` counts the fits done (a public figure: the scheduler logs it, tests check it).
    Matching holds the model's lock, so two threads never use the one `Matcher` at once.
    """

    def __init__(self, make: Callable[[], Matcher] = Matcher) -> None:
        self._make = make
        self._matcher: Matcher | None = None
        self._key: tuple[object, ...] | None = None
        self._lock = threading.RLock()
        self.fits = 0

    @classmethod
    def for_settings(cls, settings: Settings) -> FittedModel:
        """A model whose matcher knows the user's topics.toml beside the config file."""
        return cls(lambda: Matcher(topics_file=settings.topics_file))

    @contextmanager
    def matcher(self, store: Store, since: datetime, offered: Sequence[Entry]) -> Iterator[Matcher]:
        """The matcher fitted on the entries since `since` (or on `offered` if there are none).

        Held for the `with` block: nothing refits or matches with it meanwhile.
        """
        with self._lock:
            count, latest = store.corpus_fingerprint(since)
            key: tuple[object, ...] = (store.url, count, latest)
            if count == 0:  # fitted on the offered entries themselves: nothing to reuse
                key = (store.url, 0, tuple(e.id for e in offered))
            if self._matcher is None or key != self._key:
                corpus = store.entries_since(since) if count else list(offered)
                self._matcher = self._make().fit(corpus)
                self._key = key
                self.fits += 1
            yield self._matcher

    def forget(self) -> None:
        """Drop the fitted model (the next plan fits again)."""
        with self._lock:
            self._matcher = None
            self._key = None
