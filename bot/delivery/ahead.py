"""Render-ahead: a run's digests sent in order while the next one is claimed and rendered.

A sender thread sends and confirms one digest after the other, so at most one digest is ever
sent and not yet confirmed. Digests claimed and rendered ahead (AHEAD wait in the queue, one more
is being claimed) are never sent before the one on the wire is confirmed: a crash leaves them
pending, never sent (the next run sends them once), and a stop gives them back (`Store.unclaim`).
Only the digest on the wire can be sent twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from queue import Queue

from ..models import Outcome
from .plan import Plan
from .send import Held, Sender

AHEAD = 1  # digests claimed and rendered, waiting for the one on the wire


def deliver_ahead(
    sender: Sender,
    plans: Sequence[Plan],
    stop: Callable[[], bool] | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """`deliver` each plan in order; the next digest is claimed and rendered while one is on the wire.

    `stop` is asked before each claim and each send; a digest claimed ahead but not sent when
    it says yes is given back, as if never claimed.
    """
    outcomes: list[Outcome] = []
    jobs: Queue[Outcome | Held | None] = Queue(maxsize=AHEAD)
    failed: list[BaseException] = []
    halt = threading.Event()  # set on an error on either side: nothing more is sent

    def stopped() -> bool:
        return halt.is_set() or (stop is not None and stop())

    def send_each() -> None:
        while (job := jobs.get()) is not None:
            try:
                if isinstance(job, Held) and stopped():
                    sender.give_back(job.digest)
                    continue
                outcome = job if isinstance(job, Outcome) else sender.send_held(job)
                outcomes.append(outcome)
                if progress:
                    progress(outcome)
            except BaseException as e:  # noqa: BLE001 - handed to the caller below
                failed.append(e)
                halt.set()

    thread = threading.Thread(target=send_each, name="digestbot-sender", daemon=True)
    with sender.process.fast_switch():
        thread.start()
        try:
            for plan in plans:
                if stopped():
                    break
                _claim_ahead(sender, plan, jobs)
        except BaseException:
            # Ctrl-C here: the digest on the wire is finished, nothing more is sent
            halt.set()
            raise
        finally:
            jobs.put(None)
            thread.join()
    if failed:
        raise failed[0]
    return outcomes


def _claim_ahead(sender: Sender, plan: Plan, jobs: Queue[Outcome | Held | None]) -> None:
    """Claim and render one plan's digest, then queue it for the sender thread."""
    job = sender.claim(plan)
    try:
        if isinstance(job, Held):
            sender.prepare(job)
        jobs.put(job)
    except BaseException:
        if isinstance(job, Held):
            sender.give_back(job.digest)
        raise
