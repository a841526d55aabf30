"""Sources: one module per kind (`hf_daily`, `feeds` for RSS/Atom and arXiv listings, `arxiv_api`,
`files`) and a small registry (`_base`): `SOURCES` maps each `type` name to its class."""

from __future__ import annotations

from ..models import FetchState  # defined with the other models (the store keeps it)
from . import arxiv_api, feeds, files, hf_daily  # noqa: F401  (registration side effect)
from ._base import SOURCES, FetchResult, Source, clean_entries, register
from ._http import interrupt_waits

__all__ = [
    "SOURCES",
    "FetchResult",
    "FetchState",
    "Source",
    "clean_entries",
    "interrupt_waits",
    "register",
]
