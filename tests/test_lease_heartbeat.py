"""The lease heartbeat (`bot.delivery.lease.Heartbeat`): renews what it keeps, survives errors."""

from __future__ import annotations

import threading
import time

from bot.delivery.lease import Heartbeat
from bot.errors import StoreError


def test_an_unexpected_error_in_one_renewal_does_not_stop_the_heartbeat() -> None:
    """A renewal that raises something other than a BotError (a driver's own exception, a bug)
    is logged and the beat goes on: a dead thread would renew nothing for the rest of the
    sender's life, and a slow send could then be taken over and sent twice."""
    calls: list[str] = []
    lock = threading.Lock()
    errors = iter([RuntimeError("pool timeout"), StoreError("database away")])

    def renew(did: str) -> bool:
        with lock:
            calls.append(did)
        err = next(errors, None)
        if err is not None:
            raise err
        return True

    beat = Heartbeat(renew, lambda: 0.02)
    try:
        with beat.keep("d1") as kept:
            deadline = time.monotonic() + 5
            while calls.count("d1") < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert calls.count("d1") >= 4 and not kept.lost  # renewed after both errors
        with beat.keep("d2"):
            deadline = time.monotonic() + 5
            while "d2" not in calls and time.monotonic() < deadline:
                time.sleep(0.01)
        assert "d2" in calls
    finally:
        beat.close()


def test_a_lease_found_held_by_another_sender_is_marked_lost_and_no_longer_renewed() -> None:
    calls: list[str] = []
    beat = Heartbeat(lambda did: bool(calls.append(did)), lambda: 0.02)  # False: lost
    try:
        with beat.keep("d1") as kept:
            deadline = time.monotonic() + 5
            while not kept.lost and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1)
        assert kept.lost and calls == ["d1"]
    finally:
        beat.close()
