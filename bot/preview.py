"""TEMPORARY shim until issue 16 merges: the CLI still imports `bot.preview`. Delete at merge.

Moved to `bot.delivery.preview` (`from bot.delivery import next_digest, write_preview`).
"""

from __future__ import annotations

from .delivery import next_digest, write_preview

__all__ = ["next_digest", "write_preview"]
