"""What the sending threads of one process share: the digests in flight and the switch interval.

Both are process-wide by nature (recovery in one thread must not take the digest another thread
is sending; the interpreter has one switch interval), so this module owns the one instance,
`PROCESS`, that every `Sender` of the process uses.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# While sending, the interpreter switches threads at least this often (default 5 ms): the sender,
# woken by the SMTP server's reply, gets the lock back from the rendering thread without waiting
# out the long default slice, four times per message.
SWITCH_SECONDS = 0.0002


class SendingProcess:
    """The digests this process is sending, and the switch interval while any run sends."""

    def __init__(self) -> None:
        self._in_flight: set[str] = set()
        self._in_flight_lock = threading.Lock()
        self._senders = 0  # how many `fast_switch` blocks are running
        self._saved = 0.0  # the interval before the first of them
        self._switch_lock = threading.Lock()

    def hold(self, did: str) -> bool:
        """Mark a digest as being sent by this process; False if a thread holds it already."""
        with self._in_flight_lock:
            if did in self._in_flight:
                return False
            self._in_flight.add(did)
            return True

    def drop(self, did: str) -> None:
        """Let a held digest go (no harm if it is not held)."""
        with self._in_flight_lock:
            self._in_flight.discard(did)

    def holds(self, did: str) -> bool:
        """Whether a thread of this process is sending this digest now."""
        with self._in_flight_lock:
            return did in self._in_flight

    @contextmanager
    def fast_switch(self) -> Iterator[None]:
        """Shorten the thread switch interval while any run sends; the last one out restores it."""
        with self._switch_lock:
            if self._senders == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, SWITCH_SECONDS))
            self._senders += 1
        try:
            yield
        finally:
            with self._switch_lock:
                self._senders -= 1
                if self._senders == 0:
                    sys.setswitchinterval(self._saved)


PROCESS = SendingProcess()
