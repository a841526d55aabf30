"""Fetch every configured source into the store; one failing source never stops the others."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests

from . import __version__
from .config import Settings, SourceSpec
from .errors import BotError, SourceError
from .models import Entry, FetchState
from .sources import SOURCES
from .sources.files import read_entries
from .store import Store, merge_entry
from .text import clip

log = logging.getLogger(__name__)
USER_AGENT = f"digestbot/{__version__} (+https://pypi.org/project/digestbot/)"
MAX_REDIRECTS = 5
MAX_ERROR = 2000  # characters of a source's error kept (logged, stored, shown by status)
# Set on the log record of a source's failure: a command that prints the failure itself
# (`run --once`) filters these records out, so the failure is shown once.
SOURCE_FAILED = "digestbot_source_failed"


@dataclass(slots=True)
class FetchReport:
    """What one source's fetch did."""

    source: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    not_modified: bool = False
    error: str = ""
    warnings: list[str] = field(default_factory=list)


def http_session() -> requests.Session:
    """The HTTP session every source uses: a User-Agent naming digestbot and its version."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.max_redirects = MAX_REDIRECTS
    return session


def fetch_source(
    spec: SourceSpec,
    settings: Settings,
    store: Store,
    http: requests.Session,
    now: datetime | None = None,
) -> FetchReport:
    """Fetch one source and store what it brings; errors are reported, not raised."""
    report = FetchReport(spec.name)
    options = dict(spec.options)
    if "path" in options:
        options["path"] = str(settings.resolve(Path(options["path"])))
    state: FetchState = store.get_state(spec.name)
    try:
        if spec.type not in SOURCES:
            raise SourceError(
                spec.name, f"unknown type {spec.type!r}; use one of {', '.join(sorted(SOURCES))}"
            )
        result = SOURCES[spec.type](spec.name, options, http).fetch(state)
    except Exception as e:  # noqa: BLE001  reported, not raised; logged with its traceback in _failed
        message = (
            str(e)
            if isinstance(e, BotError)
            else f"source {spec.name!r}: unexpected {type(e).__name__}: {e}; please report this"
        )
        return _failed(store, report, message, now, exc_info=not isinstance(e, BotError))
    report.warnings = [clip(w, MAX_ERROR) for w in result.warnings]  # may quote the feed
    for w in report.warnings:
        log.warning("source %r: %s", spec.name, w)
    report.not_modified = result.not_modified
    try:
        report.new, report.updated, report.unchanged = store.upsert_entries(result.entries, now=now)
    except Exception as e:  # noqa: BLE001  a batch the database refuses fails this source only
        message = f"source {spec.name!r}: could not store its {len(result.entries)} entries ({type(e).__name__}: {e}); check the database"
        return _failed(store, report, message, now)
    store.save_fetch(
        spec.name,
        result.state,
        counts={"new": report.new, "updated": report.updated, "unchanged": report.unchanged},
        now=now,
    )
    return report


def _failed(
    store: Store, report: FetchReport, message: str, now: datetime | None, exc_info: bool = False
) -> FetchReport:
    """Record a failed fetch. The message may quote what a server sent (an API's `error` text):
    it is made printable and capped before it is logged and stored (PostgreSQL refuses NUL,
    and a NUL in one source's error stopped every source's fetch)."""
    report.error = clip(message, MAX_ERROR)
    log.warning("%s", report.error, exc_info=exc_info, extra={SOURCE_FAILED: True})
    store.save_fetch(report.source, None, error=report.error, now=now)
    return report


def fetch_all(
    settings: Settings,
    store: Store,
    specs: Sequence[SourceSpec] | None = None,
    progress: Callable[[FetchReport], None] | None = None,
    now: datetime | None = None,
) -> list[FetchReport]:
    """Fetch every source (or `specs`) in turn; return one report per source."""
    reports = []
    with http_session() as http:
        for spec in settings.sources if specs is None else specs:
            report = fetch_source(spec, settings, store, http, now)
            reports.append(report)
            if progress:
                progress(report)
    return reports


def read_entry_files(
    paths: Iterable[str], warn: Callable[[str, str], None] | None = None
) -> list[Entry]:
    """Entries from feed and HF JSON files, one per paper, merged as the store merges them.

    `warn(path, warning)` hears each file's warnings as it is read; a file that cannot be read
    raises `SourceError`.
    """
    merged: dict[str, Entry] = {}
    for path in paths:
        found, warnings = read_entries(path)
        for w in warnings:
            if warn:
                warn(path, clip(w, MAX_ERROR))  # a warning may quote the file's own text
        for e in found:
            merged[e.id] = merge_entry(merged[e.id], e) if e.id in merged else e
    return list(merged.values())
