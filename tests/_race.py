"""`python tests/_race.py GATE PARTIES digestbot-args…`: digestbot, held at a barrier before its first claim.

The first `Store.claim` of the process (from any thread) waits until PARTIES processes have
reached theirs, so every process has planned its digests before any is claimed: each slot is
then raced for. Each claim's result is written to GATE/<pid>.claims ("won <subscriber>" or
"lost <subscriber>"), so the test can check that the loser saw the slot taken.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bot.store import Store

TIMEOUT = 60.0  # seconds to wait for the other processes at the barrier


def main() -> None:
    """Wrap Store.claim, then run `python -m bot` with the remaining arguments."""
    gate, parties, argv = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    claim = Store.claim
    lock = threading.Lock()
    passed = threading.Event()
    record = gate / f"{os.getpid()}.claims"

    def at_the_barrier() -> None:
        (gate / f"{os.getpid()}.ready").touch()
        deadline = time.monotonic() + TIMEOUT
        while len(list(gate.glob("*.ready"))) < parties:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the other process never reached its first claim within {TIMEOUT:.0f} s"
                )
            time.sleep(0.005)
        passed.set()

    def raced_claim(self: Store, subscriber_id: str, *args: Any, **kwargs: Any) -> Any:
        with lock:
            if not passed.is_set():
                at_the_barrier()
        result = claim(self, subscriber_id, *args, **kwargs)
        with lock, record.open("a", encoding="utf-8") as f:
            f.write(f"{'lost' if result is None else 'won'} {subscriber_id}\n")
        return result

    Store.claim = raced_claim  # type: ignore[method-assign]
    sys.argv = ["digestbot", *argv]
    runpy.run_module("bot", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
