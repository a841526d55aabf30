"""TEMPORARY shim until issue 16 merges: the CLI still imports `bot.pipeline`. Delete at merge.

Moved to `bot.delivery` (see its docstring for the map).
"""

from __future__ import annotations

from .delivery import run_once

__all__ = ["run_once"]
