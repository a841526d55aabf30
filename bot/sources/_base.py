"""What every source is: the `Source` class with its options as data, the registry, and the
cleaned `FetchResult` a fetch returns (the source boundary)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import requests

from ..errors import SourceError
from ..models import Entry, FetchState
from ..text import cut, strip_controls
from ._caps import FIELD_CHARS


@dataclass(slots=True)
class FetchResult:
    """The outcome of one fetch: the entries read and the state to keep for the next fetch.

    This is the source boundary: whatever a source puts in `entries` is passed through
    `clean_entries`, so nothing downstream sees a control character from a feed.
    """

    entries: list[Entry]
    state: FetchState
    not_modified: bool = False  # the server answered 304: nothing changed
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.entries = clean_entries(self.entries)


def clean_entries(entries: Iterable[Entry]) -> list[Entry]:
    """Entries with `strip_controls` applied to every string they hold, each id once (the first kept).

    A string other than the id is also cut to `FIELD_CHARS` characters, whatever the source
    (a feed's elements are cut before parsing already; JSON and plug-in sources are not).

    Ids are compared after cleaning: two guids that differ only by a zero-width character are
    one entry, and a batch must never hold one id twice.
    """
    out: dict[str, Entry] = {}
    for e in entries:
        e = _clean_entry(e)
        if e.id:  # an id made only of invisible characters names nothing
            out.setdefault(e.id, e)
    return list(out.values())


def _clean_entry(e: Entry) -> Entry:
    fields = (e.id, e.title, e.summary, e.url, e.source, *e.authors, *e.tags)
    if all(_clean(f) is f for f in fields) and _clean_value(e.extra) is e.extra:
        return e  # the common case: nothing to remove, no copy
    return replace(
        e,
        id=strip_controls(e.id),
        title=_clean(e.title),
        summary=_clean(e.summary),
        url=_clean(e.url),
        source=_clean(e.source),
        authors=tuple(a for a in map(_clean, e.authors) if a),
        tags=tuple(t for t in map(_clean, e.tags) if t),
        extra=_clean_value(e.extra),
    )


def _clean(text: str) -> str:
    """One string from a source: no control, bidi or zero-width character; at most FIELD_CHARS long."""
    return cut(strip_controls(text), FIELD_CHARS)


def _clean_value(value: Any) -> Any:
    """A JSON-like value with its strings (keys too) cleaned; the same object when nothing changed."""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, Mapping):
        items = [(_clean_value(k), _clean_value(v)) for k, v in value.items()]
        same = all(
            k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)
        )
        return value if same else dict(items)
    if isinstance(value, list | tuple):
        cleaned = [_clean_value(v) for v in value]
        return (
            value
            if all(a is b for a, b in zip(cleaned, value, strict=True))
            else type(value)(cleaned)
        )
    return value


class Source(ABC):
    """A place entries come from. Subclasses declare their options as class data."""

    kind: ClassVar[str] = ""
    # option name -> default (None = required); `name` and `type` are always allowed.
    options: ClassVar[dict[str, Any]] = {}

    # options that may also be given as a list of strings (e.g. arXiv categories)
    list_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, settings: Mapping[str, Any], http: requests.Session) -> None:
        self.name = name
        self.settings = {**self.options, **settings}
        self.http = http
        wrong = [
            found
            for key, default in self.options.items()
            if (found := _option_problem(self, key, default, self.settings[key]))
        ]
        if wrong:  # every wrong option at once: `check` names them all, not one per run
            raise SourceError(name, "; also ".join(wrong))

    @abstractmethod
    def fetch(self, state: FetchState) -> FetchResult:
        """Fetch new entries; raise `SourceError` with the fix when the source cannot be read."""


def _option_problem(source: Source, key: str, default: Any, value: Any) -> str:
    """What is wrong with a configured value, naming the key and the fix; "" when nothing."""
    if value is default:
        return ""
    if default is None:  # required options are all addresses or paths
        ok, kind = isinstance(value, str) and bool(value.strip()), "a non-empty string"
    elif isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int | float):
        # A timeout, a size cap, a count: 0 (or nan, inf) would fail every fetch, not the check.
        ok, kind = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0,
            "a number > 0",
        )
    elif isinstance(default, str) and key in source.list_options:
        ok = isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        kind = "a string or a list of strings"
    else:
        ok, kind = isinstance(value, type(default)), f"a {type(default).__name__}"
    if ok:
        return ""
    return (
        f"{key} = {value!r} is not {kind}; write e.g. {key} = {default!r} in its [[sources]] table"
    )


SOURCES: dict[str, type[Source]] = {}


def register(kind: str) -> Callable[[type[Source]], type[Source]]:
    """Class decorator: make a source kind available by its `type` name."""

    def add(cls: type[Source]) -> type[Source]:
        if kind in SOURCES:
            raise ValueError(f"source kind {kind!r} registered twice")
        cls.kind = kind
        SOURCES[kind] = cls
        return cls

    return add
