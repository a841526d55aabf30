"""Rate limits that hold across a whole run: at most one event per interval, per key."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Module-level so tests can replace the clock (they mock only the clock).
_clock: Callable[[], float] = time.monotonic
_sleep: Callable[[float], None] = time.sleep


class RateLimiter:
    """Spaces events at least `interval` seconds apart (a rate of 1/interval per second)."""

    def __init__(self, interval: float) -> None:
        self.interval = max(0.0, interval)
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until the next event may happen; return the seconds waited."""
        if self.interval <= 0:
            return 0.0
        with self._lock:
            now = _clock()
            at = max(now, self._next)
            self._next = at + self.interval
        delay = at - now
        if delay > 0:
            _sleep(delay)
        return delay


_shared: dict[str, RateLimiter] = {}
_shared_lock = threading.Lock()


def shared(key: str, interval: float) -> RateLimiter:
    """The process-wide limiter for `key` (e.g. "email" or "slack:#papers"), made on first use.

    Shared, so the limit holds across every channel instance and digest in the process.
    """
    with _shared_lock:
        limiter = _shared.get(key)
        if limiter is None or limiter.interval != max(0.0, interval):
            limiter = _shared[key] = RateLimiter(interval)
        return limiter


def per_second(rate: float) -> float:
    """The interval for a rate in events per second (0 or less: no limit)."""
    return 1.0 / rate if rate > 0 else 0.0
