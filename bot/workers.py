"""TEMPORARY shim until issue 16 merges: the CLI still imports `bot.workers`. Delete at merge.

Moved to `bot.pool` (see its docstring for the map).
"""

from __future__ import annotations

from .pool import dispatch_tick, pool_status, require_pool, run_dispatcher, start_worker

__all__ = ["dispatch_tick", "pool_status", "require_pool", "run_dispatcher", "start_worker"]
