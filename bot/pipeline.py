"""The pipeline: choose each due digest, then claim → render → send → confirm; and `run_once()`."""

from __future__ import annotations

import logging
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from queue import Queue

from .channels import CHANNELS, Channel, channel_for
from .config import Settings
from .errors import BotError, SendError
from .match import Matcher
from .models import Digest, DigestItem, Entry, Subscriber
from .slots import due_slot
from .store import DigestRow, Store, digest_id

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)  # how long a sender holds a pending digest before others may take it
# A live process on this host keeps its digests even past the lease (its clock may have jumped),
# unless the lease ran out this long ago: then it is taken to be hung, or its pid reused.
STALE = timedelta(hours=1)
# Digests claimed and rendered ahead of the one being sent (`Deliverer.deliver_all`): AHEAD wait in
# the queue, one more is being claimed. None is sent before the one on the wire is confirmed, so a
# crash leaves them pending, never sent (the next run sends them once), and a stop gives them back
# (`Store.unclaim`). Only the digest on the wire can be sent twice.
AHEAD = 1
# While sending, the interpreter switches threads at least this often (default 5 ms): the sender,
# woken by the SMTP server's reply, gets the lock back from the rendering thread without waiting
# out the long default slice, four times per message.
SWITCH_SECONDS = 0.0002
_SWITCH = {"users": 0, "saved": 0.0}  # how many deliver_all are running, and the interval before the first
_SWITCH_LOCK = threading.Lock()


def _fast_switch(on: bool) -> None:
    """Shorten the interpreter's thread switch interval while any `deliver_all` runs; restore it after."""
    with _SWITCH_LOCK:
        if on:
            if _SWITCH["users"] == 0:
                _SWITCH["saved"] = sys.getswitchinterval()
                sys.setswitchinterval(min(_SWITCH["saved"], SWITCH_SECONDS))
            _SWITCH["users"] += 1
        else:
            _SWITCH["users"] -= 1
            if _SWITCH["users"] == 0:
                sys.setswitchinterval(_SWITCH["saved"])

# Digests this process is sending right now: recovery in another thread must not take them.
_IN_FLIGHT: set[str] = set()
_IN_FLIGHT_LOCK = threading.Lock()


def _hold(did: str) -> bool:
    with _IN_FLIGHT_LOCK:
        if did in _IN_FLIGHT:
            return False
        _IN_FLIGHT.add(did)
        return True


def _drop(did: str) -> None:
    with _IN_FLIGHT_LOCK:
        _IN_FLIGHT.discard(did)


def owner_token() -> str:
    """Who is sending: host and process, so a restart on this host can tell its dead twin."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _same_host(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit()


def _owner_alive(owner: str) -> bool:
    if not _same_host(owner):
        return True  # another machine's: trust its lease
    try:
        os.kill(int(owner.rpartition(":")[2]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class Plan:
    """A digest to make: the subscriber, its slot and the entries chosen for it."""

    subscriber: Subscriber
    slot: datetime
    items: tuple[DigestItem, ...]
    more: int = 0


@dataclass(slots=True)
class Outcome:
    """What became of one subscriber in a run."""

    subscriber: str
    status: str  # sent | empty | failed | pending | not-due | skipped
    entries: int = 0
    destination: str = ""
    digest_id: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter for transient send failures."""

    attempts: int = 4
    base: float = 1.0
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try `attempt + 1` (full jitter)."""
        return random.uniform(0, min(self.cap, self.base * 2 ** attempt))


class Deliverer:
    """Sends claimed digests through their channels and confirms them in the ledger."""

    def __init__(self, settings: Settings, store: Store, retry: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.store = store
        self.retry = retry
        self.sleep = sleep
        self.owner = owner_token()
        self._channels: dict[str, Channel] = {}

    def channel(self, name: str) -> Channel:
        """The channel instance for `name`, made once per run so connections are reused."""
        if name not in self._channels:
            self._channels[name] = CHANNELS[name](self.settings)
        return self._channels[name]

    def close(self) -> None:
        """Close every channel's connections."""
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def send(self, digest: Digest, channel_name: str) -> Outcome:
        """Send a claimed digest with retries; confirm it sent, failed, or leave it pending."""
        if not _hold(digest.id):
            return Outcome(digest.subscriber.id, "skipped", digest_id=digest.id, reason="being sent by another thread")
        try:
            return self._send(digest, channel_name)
        finally:
            _drop(digest.id)

    def _send(self, digest: Digest, channel_name: str, leased: float | None = None) -> Outcome:
        sub = digest.subscriber
        try:
            channel = self.channel(channel_name)
        except BotError as e:
            self.store.note_attempt(digest.id, str(e))
            self.store.release(digest.id, self.owner)
            return Outcome(sub.id, "pending", len(digest.items), sub.address, digest.id, str(e))
        leased = time.monotonic() if leased is None else leased  # when the lease was last taken
        for attempt in range(self.retry.attempts):
            # Keep the lease while retrying, so no other process takes the digest meanwhile;
            # if one has (our lease ran out), it sends it and we stop.
            if time.monotonic() - leased > LEASE.total_seconds() / 3:
                if not self.store.renew(digest.id, self.owner, LEASE):
                    return Outcome(sub.id, "skipped", len(digest.items), sub.address, digest.id, "taken over by another process")
                leased = time.monotonic()
            try:
                receipt = channel.send(digest)
            except SendError as e:
                if not e.transient:
                    self.store.mark_failed(digest.id, str(e))
                    log.error("digest %s for %s failed: %s", digest.id, sub.id, e)
                    return Outcome(sub.id, "failed", len(digest.items), sub.address, digest.id, str(e))
                self.store.note_attempt(digest.id, str(e))
                log.warning("digest %s for %s: %s (try %d of %d)", digest.id, sub.id, e, attempt + 1, self.retry.attempts)
                if attempt + 1 < self.retry.attempts:
                    # The server may say how long to wait (Slack's Retry-After): never sooner.
                    wait = max(self.retry.delay(attempt), float(getattr(e, "retry_after", 0) or 0))
                    self.sleep(wait)
                    continue
                # Out of tries: stays pending, and the lease is let go so the next run retries it.
                self.store.release(digest.id, self.owner)
                return Outcome(sub.id, "pending", len(digest.items), sub.address, digest.id, str(e))
            except Exception as e:  # a bug in one digest must not stop the others
                log.exception("digest %s for %s: unexpected error", digest.id, sub.id)
                reason = f"unexpected error ({type(e).__name__}: {e}); see the log, report it if it persists"
                self.store.note_attempt(digest.id, reason)
                self.store.release(digest.id, self.owner)
                return Outcome(sub.id, "pending", len(digest.items), sub.address, digest.id, reason)
            self.store.mark_sent(digest.id, receipt.detail)
            return Outcome(sub.id, "sent", len(digest.items), receipt.destination, digest.id)
        raise AssertionError("unreachable")

    def deliver(self, plan: Plan) -> Outcome:
        """Claim (subscriber, slot) and its entries, then send: the ledger's claim → send → confirm."""
        job = self._claim(plan)
        return job if isinstance(job, Outcome) else self._send_held(*job)

    def _claim(self, plan: Plan) -> Outcome | tuple[Digest, str, float]:
        """Claim a plan's digest and hold it in this process: the digest and its channel's name, or the outcome."""
        sub = plan.subscriber
        name = channel_for(sub, self.settings)
        did = digest_id(sub.id, plan.slot)
        if not _hold(did):  # held before it is claimed: recovery in another thread leaves it alone
            return Outcome(sub.id, "skipped", digest_id=did, reason="being sent by another thread")
        try:
            claimed = self.store.claim(sub.id, plan.slot, plan.items, name, plan.more, owner=self.owner, lease=LEASE)
        except BaseException:
            _drop(did)
            raise
        if claimed is None or not claimed[1]:
            _drop(did)
            if claimed is None:
                return Outcome(sub.id, "skipped", reason="another run claimed this slot")
            return Outcome(sub.id, "empty", 0, sub.address, did)
        return Digest(did, sub, plan.slot, tuple(claimed[1]), plan.more), name, time.monotonic()

    def _send_held(self, digest: Digest, channel_name: str, leased: float) -> Outcome:
        """`_send` a digest this process holds (its lease taken at `leased`), then let it go."""
        try:
            return self._send(digest, channel_name, leased)
        finally:
            _drop(digest.id)

    def deliver_all(self, plans: Sequence[Plan], stop: Callable[[], bool] | None = None,
                    progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
        """`deliver` each plan in order; the next digest is claimed and rendered while one is on the wire.

        A sender thread sends and confirms one digest after the other, so at most one digest is
        ever sent and not yet confirmed. `stop` is asked before each claim and each send; a
        digest claimed ahead but not sent when it says yes is given back, as if never claimed.
        """
        outcomes: list[Outcome] = []
        jobs: Queue[Outcome | tuple[Digest, str, float] | None] = Queue(maxsize=AHEAD)
        failed: list[BaseException] = []
        halt = threading.Event()  # set on an error on either side: nothing more is sent

        def stopped() -> bool:
            return halt.is_set() or (stop is not None and stop())

        def sender() -> None:
            while (job := jobs.get()) is not None:
                try:
                    if isinstance(job, Outcome):
                        outcome = job
                    elif stopped():
                        self._give_back(job[0])
                        continue
                    else:
                        outcome = self._send_held(*job)
                    outcomes.append(outcome)
                    if progress:
                        progress(outcome)
                except BaseException as e:  # noqa: BLE001 - handed to the caller below
                    failed.append(e)
                    halt.set()

        thread = threading.Thread(target=sender, name="digestbot-sender", daemon=True)
        _fast_switch(True)
        thread.start()
        try:
            for plan in plans:
                if stopped():
                    break
                job = self._claim(plan)
                try:
                    if not isinstance(job, Outcome):
                        self._prepare(*job[:2])
                    jobs.put(job)
                except BaseException:
                    if not isinstance(job, Outcome):
                        self._give_back(job[0])
                    raise
        except BaseException:  # Ctrl-C here: the digest on the wire is finished, nothing more is sent
            halt.set()
            raise
        finally:
            jobs.put(None)
            thread.join()
            _fast_switch(False)
        if failed:
            raise failed[0]
        return outcomes

    def _give_back(self, digest: Digest) -> None:
        """Unclaim a digest claimed ahead and never sent (a stop came first)."""
        try:
            if not self.store.unclaim(digest.id, self.owner):
                log.warning("digest %s was claimed ahead and could not be given back; the next run sends it", digest.id)
        finally:
            _drop(digest.id)

    def _prepare(self, digest: Digest, channel_name: str) -> None:
        """Let the channel render a digest ahead of sending it; any error shows when it is sent."""
        try:
            self.channel(channel_name).prepare(digest)
        except Exception:  # `send` renders again and reports the error in its place
            log.debug("preparing %s failed; sending will say why", digest.id, exc_info=True)

    def recover(self, subscribers: Sequence[Subscriber], stop: Callable[[], bool] | None = None) -> list[Outcome]:
        """Resolve digests left pending by a crash or a transient failure, before anything new."""
        by_id = {s.id: s for s in subscribers}
        outcomes = []
        for row in self.store.digests_with_status("pending"):
            if stop is not None and stop():
                break
            sub = by_id.get(row.subscriber_id)
            if sub is None:
                continue  # not ours to do now, or the file is broken or gone: keep it pending
            if not self._may_take(row) or not _hold(row.id):
                continue
            try:
                outcome = self._resolve(row, sub)
            finally:
                _drop(row.id)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _resolve(self, row: DigestRow, sub: Subscriber) -> Outcome | None:
        """Take over one pending digest; mark it sent if it arrived already, else send it."""
        if not self.store.take_over(row.id, row.owner, self.owner, LEASE):
            return None  # another process was quicker
        digest = Digest(row.id, sub, row.slot, tuple(self.store.digest_items(row.id)), row.more)
        name = channel_for(sub, self.settings)
        try:
            if self.channel(name).already_delivered(digest):
                self.store.mark_sent(row.id, "found delivered after a restart")
                return Outcome(sub.id, "sent", len(digest.items), sub.address, row.id, "recovered")
        except BotError as e:
            # Unknown whether it arrived: posting again could post twice, so wait for a run
            # that can tell (email cannot tell and says no; its re-send keeps the Message-ID).
            log.warning("could not check whether %s was delivered: %s", row.id, e)
            self.store.note_attempt(row.id, f"could not check whether it was delivered: {e}")
            self.store.release(row.id, self.owner)
            return Outcome(sub.id, "pending", len(digest.items), sub.address, row.id, str(e))
        return self._send(digest, name)

    def _may_take(self, row: DigestRow) -> bool:
        """Whether this process may resolve a pending digest now.

        Ours (left by a failed earlier try in this process) unless a thread is sending it; a
        dead process's on this host at once; a live one's on this host only when its lease ran
        out long ago; another host's when its lease ran out.
        """
        if row.owner == self.owner:
            with _IN_FLIGHT_LOCK:
                return row.id not in _IN_FLIGHT
        now = datetime.now(UTC)
        expired = row.lease_until is None or row.lease_until < now
        if _same_host(row.owner):
            if not _owner_alive(row.owner):
                return True
            return row.lease_until is None or row.lease_until + STALE < now
        return expired


def plan_digests(
    settings: Settings,
    store: Store,
    subscribers: Sequence[Subscriber],
    now: datetime,
    matcher: Matcher | None = None,
) -> tuple[list[Plan], list[Subscriber]]:
    """Match every due subscriber in one pass; return the plans and the subscribers not due."""
    last = store.last_slots()
    due: list[tuple[Subscriber, datetime]] = []
    idle: list[Subscriber] = []
    for sub in subscribers:
        slot = due_slot(sub, now, last.get(sub.id))
        if slot is None:
            idle.append(sub)
        else:
            due.append((sub, slot))
    if not due:
        return [], idle
    offered = store.entries_since(now - timedelta(days=settings.lookback_days))
    matcher = matcher or Matcher()
    matcher.fit(store.entries_since(now - timedelta(days=settings.corpus_days)) or offered)
    subs = [s for s, _ in due]
    results = matcher.match(offered, subs, delivered=store.delivered(s.id for s in subs),
                            feedback=store.feedback_for(s.id for s in subs), unselected=False)
    by_id: dict[str, Entry] = {e.id: e for e in offered}
    plans = []
    for sub, slot in due:
        chosen = [m for m in results.get(sub.id, []) if m.selected]
        items = tuple(DigestItem(by_id[m.entry_id], m.score, m.why, m.topic) for m in chosen[: sub.max_items])
        plans.append(Plan(sub, slot, items, max(0, len(chosen) - sub.max_items)))
    return plans, idle


@dataclass(slots=True)
class RunReport:
    """What `run_once` did, subscriber by subscriber."""

    recovered: list[Outcome] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


def run_once(
    settings: Settings,
    store: Store,
    subscribers: Sequence[Subscriber],
    now: datetime | None = None,
    deliverer: Deliverer | None = None,
    progress: Callable[[Outcome], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> RunReport:
    """Resolve pending digests, then send every digest that is due now. Fetching is the caller's.

    `stop` is asked before each digest: once it says yes, the digest in flight is finished and
    nothing new is started (the scheduler's SIGTERM).
    """
    now = now or datetime.now(UTC)
    own = deliverer is None
    deliverer = deliverer or Deliverer(settings, store)
    report = RunReport()
    try:
        report.recovered = deliverer.recover(subscribers, stop)
        if stop is not None and stop():
            return report
        plans, idle = plan_digests(settings, store, subscribers, now)
        report.outcomes = deliverer.deliver_all(plans, stop, progress)
        for sub in idle:
            report.outcomes.append(Outcome(sub.id, "not-due", 0, sub.address))
    finally:
        if own:
            deliverer.close()
    return report
