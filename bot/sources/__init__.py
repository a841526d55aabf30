"""Sources: one module per kind, a small registry, and `read_entries` for local files."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests

from ..errors import SourceError
from ..models import Entry
from ..models import FetchState as FetchState  # defined with the other models (the store keeps it)


@dataclass(slots=True)
class FetchResult:
    """The outcome of one fetch: the entries read and the state to keep for the next fetch."""

    entries: list[Entry]
    state: FetchState
    not_modified: bool = False  # the server answered 304: nothing changed
    warnings: list[str] = field(default_factory=list)


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
        for key, default in self.options.items():
            _check_option(self, key, default, self.settings[key])

    @abstractmethod
    def fetch(self, state: FetchState) -> FetchResult:
        """Fetch new entries; raise `SourceError` with the fix when the source cannot be read."""


def _check_option(source: Source, key: str, default: Any, value: Any) -> None:
    """Raise `SourceError` naming the key when a configured value has the wrong type."""
    if value is default:
        return
    if default is None:  # required options are all addresses or paths
        ok, kind = isinstance(value, str) and bool(value.strip()), "a non-empty string"
    elif isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int | float):
        ok, kind = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0, "a number ≥ 0"
    elif isinstance(default, str) and key in source.list_options:
        ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        kind = "a string or a list of strings"
    else:
        ok, kind = isinstance(value, type(default)), f"a {type(default).__name__}"
    if not ok:
        raise SourceError(source.name, f"{key} = {value!r} is not {kind}; write e.g. {key} = {default!r} in its [[sources]] table")


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


def _load_builtin() -> None:
    from . import arxiv_api, feeds, files, hf_daily  # noqa: F401  (registration side effect)


_load_builtin()
