"""Who holds a pending digest: a sender's owner token, its lease (kept by a `Heartbeat` while it
sends), and when another may take over."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from ..errors import BotError
from ..store import DigestRow

log = logging.getLogger("bot.delivery")

LEASE = timedelta(minutes=5)  # how long a sender holds a pending digest before others may take it
# A live process on this host keeps its digests even past the lease (its clock may have jumped),
# unless the lease ran out this long ago: then it is taken to be hung, or its pid reused.
STALE = timedelta(hours=1)


def owner_token() -> str:
    """Who is sending: host and process, so a restart on this host can tell its dead twin."""
    return f"{socket.gethostname()}:{os.getpid()}"


def same_host(owner: str) -> bool:
    """Whether `owner` is a process of this host (a `host:pid` token with this host name)."""
    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit()


def owner_alive(owner: str) -> bool:
    """Whether the process named by `owner` may still be running: another host's always may."""
    if not same_host(owner):
        return True  # another machine's: trust its lease
    try:
        os.kill(int(owner.rpartition(":")[2]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def may_take_over(row: DigestRow, now: datetime) -> bool:
    """Whether a pending digest another process holds may be taken from it now.

    A dead process's on this host at once; a live one's on this host only when its lease ran
    out long ago (`STALE`); another host's when its lease ran out.
    """
    if same_host(row.owner):
        if not owner_alive(row.owner):
            return True
        return row.lease_until is None or row.lease_until + STALE < now
    return row.lease_until is None or row.lease_until < now


class Kept:
    """One digest a `Heartbeat` keeps: `lost` once a renewal found it held by another sender
    (its lease had run out, say while the database was away)."""

    __slots__ = ("lost",)

    def __init__(self) -> None:
        self.lost = False


class Heartbeat:
    """Keeps a sender's leases on the digests it is sending: one thread renews each every
    `every()` seconds (a third of the lease) until its send is over (`keep`, a `with` block),
    however long the send waits inside (Slack's Retry-After, the pool's shared rate limit, a
    slow server): so no other sender takes a digest over from a live one still sending it.
    `renew(digest_id)`: the store's renewal, False when another sender holds the digest now.
    The thread starts with the first digest kept and ends at `close`."""

    def __init__(self, renew: Callable[[str], bool], every: Callable[[], float]) -> None:
        self.renew = renew
        self.every = every
        self._kept: dict[str, Kept] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def keep(self, did: str) -> Iterator[Kept]:
        """Renew `did`'s lease while the block runs."""
        kept = Kept()
        if self.every() <= 0:
            yield kept
            return
        with self._lock:
            self._kept[did] = kept
            if self._thread is None or not self._thread.is_alive():
                self._stop = threading.Event()  # this thread's own: a close before stops it
                self._thread = threading.Thread(
                    target=self._beat, args=(self._stop,), name="lease", daemon=True
                )
                self._thread.start()
        try:
            yield kept
        finally:
            with self._lock:
                if self._kept.get(did) is kept:
                    del self._kept[did]

    def close(self) -> None:
        """Stop the thread (a digest kept afterwards starts it again)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join()

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self.every()):
            with self._lock:
                kept = list(self._kept.items())
            for did, k in kept:
                try:
                    if not self.renew(did):
                        # Another sender holds it (or it was confirmed a moment ago).
                        k.lost = True
                        log.debug("the lease on %s is no longer this sender's", did)
                        with self._lock:
                            if self._kept.get(did) is k:
                                del self._kept[did]
                except BotError as e:  # the database away: try again on the next beat
                    log.warning("could not renew the lease on %s: %s", did, e)
                except Exception:  # any other error: logged (with its traceback), the beat goes on
                    # (a thread that died here would leave every later send unrenewed)
                    log.exception("could not renew the lease on %s", did)
