"""Who holds a pending digest: a sender's owner token, its lease, and when another may take over."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from ..store import DigestRow

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
