"""`gc_paused()`: Python's cyclic garbage collector held off while a pass builds many objects.

Reading 100,000 subscribers, or matching them, makes millions of small objects (rows, dicts,
tuples, `Subscriber`s, `Match`es) that all live to the end of the pass. Each few hundred
allocations the collector would start and scan the young ones, and every so often all of
them: a pass of 100,000 subscribers took twice its CPU time that way. Nothing of a pass is
cyclic garbage that needs the collector (numpy arrays and dataclasses are freed by their
reference counts), so it waits until the pass is over. Process-wide, as the collector is;
nesting is fine (the outermost pause decides).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (reference counting goes on)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
