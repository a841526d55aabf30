"""One digest's way out: claim → render → send → confirm, with retries, under a lease.

`Sender` is what the single process (`Deliverer`, in `run`) and a pool worker (`PoolDeliverer`)
have in common. Its extension point is `make_channel`: the pool wraps each channel in its shared
rate limit there, and overrides nothing.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import inf

from ..bounces.refusals import record_refusal
from ..channels import CHANNELS, Channel, channel_for, not_ready
from ..config import Settings
from ..errors import (
    BotError,
    ChannelDownError,
    SendError,
    TemplateError,
    TransientSendError,
    UnreachableError,
)
from ..models import Digest, Outcome, OutcomeStatus, Subscriber
from ..store import DigestRow, Store, digest_id
from .lease import LEASE, Heartbeat, Kept, may_take_over, owner_token
from .plan import Plan
from .process import PROCESS

log = logging.getLogger("bot.delivery")

ChannelFactory = Callable[[str, Settings], Channel]


def open_channel(name: str, settings: Settings) -> Channel:
    """The channel registered under `name`, made for these settings (the default factory)."""
    return CHANNELS[name](settings)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter for transient send failures."""

    attempts: int = 4
    base: float = 1.0
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try `attempt + 1` (full jitter)."""
        return random.uniform(0, min(self.cap, self.base * 2**attempt))


@dataclass(frozen=True, slots=True)
class Down:
    """A channel (or the part of it `Channel.down_scope` names) found down: why its digests
    wait, and until when (`Sender.clock`) it is not tried again (inf: not in this run)."""

    reason: str
    until: float


@dataclass(frozen=True, slots=True)
class Held:
    """A digest claimed and held by this process: what to send, over which channel, leased when."""

    digest: Digest
    channel: str
    leased: float  # time.monotonic() when its lease was last taken


def _outcome(
    held: Held, status: OutcomeStatus, reason: str = "", destination: str | None = None
) -> Outcome:
    """The outcome of a claimed digest: its entries, where it goes (or went), why, over what."""
    digest, sub = held.digest, held.digest.subscriber
    dest = sub.address if destination is None else destination
    return Outcome(sub.id, status, len(digest.items), dest, digest.id, reason, held.channel)


class Sender:
    """Sends claimed digests through their channels and confirms them in the ledger."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        *,
        lease: timedelta = LEASE,
        make_channel: ChannelFactory = open_channel,
        down_for: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.retry = retry
        self.sleep = sleep
        self.lease = lease
        self.make_channel = make_channel
        self.owner = owner_token()
        self.process = PROCESS
        self._channels: dict[str, Channel] = {}
        # A channel whose last digest could not reach its server gets one try per digest; a
        # second digest in a row that cannot marks it down: the run's other digests for it wait.
        self._suspect: set[str] = set()
        # (channel, down_scope) → why its digests wait, and until when. `down_for`: seconds a
        # channel found down stays down; None: for the sender's life, a run. A long-lived
        # sender (a pool worker) tries it again after that, so a channel mended is used again.
        self._down: dict[tuple[str, str], Down] = {}
        self.down_for = down_for
        self.clock = clock
        # Renews the lease of each digest while it is sent, a third of the lease apart.
        self.heartbeat = Heartbeat(self._renew, lambda: self.lease.total_seconds() / 3)

    def channel(self, name: str) -> Channel:
        """The channel instance for `name`, made once per run so connections are reused."""
        if name not in self._channels:
            self._channels[name] = self.make_channel(name, self.settings)
        return self._channels[name]

    def confirm_sent(self, did: str, receipt: str, what: str = "sent") -> None:
        """Record `did` as sent while this sender holds it; a confirm that lost its lease is
        logged (the sender that took it over confirms it)."""
        if not self.store.mark_sent(did, receipt, owner=self.owner):
            _lost_confirmation(did, what)

    def close(self) -> None:
        """Close every channel's connections; stop renewing leases."""
        self.heartbeat.close()
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    # --- claim --------------------------------------------------------------------------------
    def claim(self, plan: Plan) -> Held | Outcome:
        """Claim a plan's digest and hold it in this process; else the outcome (skipped or empty)."""
        sub = plan.subscriber
        name = channel_for(sub, self.settings)
        did = digest_id(sub.id, plan.slot)
        # Held before it is claimed: recovery in another thread leaves it alone.
        if not self.process.hold(did):
            return Outcome(
                sub.id, OutcomeStatus.SKIPPED, digest_id=did, reason="being sent by another thread"
            )
        try:
            claimed = self.store.claim(
                sub.id, plan.slot, plan.items, name, plan.more, owner=self.owner, lease=self.lease
            )
        except BaseException:
            self.process.drop(did)
            raise
        if claimed is None or not claimed.items:
            self.process.drop(did)
            if claimed is None:
                return Outcome(
                    sub.id, OutcomeStatus.SKIPPED, reason="another run claimed this slot"
                )
            return Outcome(sub.id, OutcomeStatus.EMPTY, 0, sub.address, did)
        return Held(Digest(did, sub, plan.slot, claimed.items, plan.more), name, time.monotonic())

    def give_back(self, digest: Digest) -> None:
        """Unclaim a digest claimed ahead and never sent (a stop came first)."""
        try:
            if not self.store.unclaim(digest.id, self.owner):
                log.warning(
                    "digest %s was claimed ahead and could not be given back; the next run sends it",
                    digest.id,
                )
        finally:
            self.process.drop(digest.id)

    def may_take(self, row: DigestRow) -> bool:
        """Whether this process may resolve a pending digest now.

        Ours (left by a failed earlier try in this process) unless a thread is sending it;
        another process's as `lease.may_take_over` says.
        """
        if row.owner == self.owner:
            return not self.process.holds(row.id)
        return may_take_over(row, datetime.now(UTC))

    # --- render and send ------------------------------------------------------------------------
    def may_try(self, name: str, subscriber: Subscriber) -> bool:
        """Whether channel `name` is set up for the subscriber and not marked down (for the rest
        of the run, or for `down_for` seconds in a long-lived worker)."""
        return not self.down(name, subscriber) and not not_ready(name, subscriber, self.settings)

    def down(self, name: str, subscriber: Subscriber) -> str:
        """Why channel `name` is down for this subscriber (all of it, or the part the subscriber's
        digests go through: `Channel.down_scope`), or "" when it may be tried."""
        scope = CHANNELS[name].down_scope(subscriber, self.settings)
        now = self.clock()
        for key in dict.fromkeys(((name, ""), (name, scope))):
            down = self._down.get(key)
            if down is None:
                continue
            if now < down.until:
                return down.reason
            # Expired: the next digest tries it (once, if it could not be reached: still suspect).
            if self._down.pop(key, None) is not None:
                log.info("%s%s was down; trying it again", name, f" ({key[1]})" if key[1] else "")
        return ""

    def _mark_down(self, key: tuple[str, str], reason: str) -> str:
        """Mark a channel (or part of it) down for `down_for` seconds, or the rest of the run."""
        until = inf if self.down_for is None else self.clock() + self.down_for
        self._down[key] = Down(reason, until)
        return reason

    def _not_again(self) -> str:
        """How long a channel found down is left alone: for the rest of the run, or some minutes."""
        if self.down_for is None:
            return "in this run"
        return f"for {self.down_for / 60:g} minutes"

    def prepare(self, held: Held) -> None:
        """Let the channel render a digest ahead of sending it; any error shows when it is sent."""
        if not self.may_try(held.channel, held.digest.subscriber):
            return
        try:
            self.channel(held.channel).prepare(held.digest)
        except Exception:  # `send` renders again and reports the error in its place
            log.debug("preparing %s failed; sending will say why", held.digest.id, exc_info=True)

    def deliver(self, plan: Plan) -> Outcome:
        """Claim (subscriber, slot) and its entries, then send: the ledger's claim → send → confirm."""
        job = self.claim(plan)
        return job if isinstance(job, Outcome) else self.send_held(job)

    def send(self, digest: Digest, channel_name: str, leased: float | None = None) -> Outcome:
        """Send a claimed digest with retries; confirm it sent, failed, or leave it pending.
        `leased`: when its lease was taken (time.monotonic(); None: now)."""
        if not self.process.hold(digest.id):
            return Outcome(
                digest.subscriber.id,
                OutcomeStatus.SKIPPED,
                digest_id=digest.id,
                reason="being sent by another thread",
            )
        when = time.monotonic() if leased is None else leased
        return self.send_held(Held(digest, channel_name, when))

    def send_held(self, held: Held) -> Outcome:
        """Send a digest this process holds (its lease taken at `held.leased`), then let it go."""
        try:
            return self._send(held)
        finally:
            self.process.drop(held.digest.id)

    def _wait(self, held: Held, reason: str) -> Outcome:
        """Leave a digest pending, untried, for the next run (its lease let go), saying why."""
        self.store.release(held.digest.id, self.owner, reason=reason)
        return _outcome(held, OutcomeStatus.PENDING, reason)

    def _unreachable(self, name: str, e: UnreachableError) -> None:
        """A digest ran out of tries without reaching its server: the second in a row marks the
        channel down for the rest of this sender's run, or `down_for` seconds (one warning)."""
        if name not in self._suspect:
            self._suspect.add(name)
            return
        then = "for the next run" if self.down_for is None else self._not_again()
        self._mark_down(
            (name, ""),
            f"not tried: {name} could not reach its server for two digests in a row ({e}); "
            f"the digest waits {then}",
        )
        log.warning("%s is down (%s): its other digests are not tried and wait %s", name, e, then)

    def channel_down(self, held: Held, e: ChannelDownError) -> Outcome:
        """The channel cannot send as it is set up (its login refused, its certificate not
        trusted, its Slack token refused): no digest is to blame, so none fails. This one waits,
        its try counted, and the channel — or only the part of it `Channel.down_scope` names for
        this subscriber (one Slack token) — is down for the rest of this sender's run (or
        `down_for` seconds): its other digests wait untried with the same reason (one line in
        `run --once`), a refused password or token is tried once per run rather than once per
        digest, and the first run after the fix sends them all."""
        name = held.channel
        reason = self.down(name, held.digest.subscriber)
        if not reason:
            scope = CHANNELS[name].down_scope(held.digest.subscriber, self.settings)
            what = f"{name} ({scope})" if scope else name
            then = "for the next run" if self.down_for is None else "until then"
            reason = self._mark_down(
                (name, scope),
                f"{e}; {what} is not tried again {self._not_again()}, its digests wait {then}",
            )
            log.error("%s is down: %s", what, reason)
        return self._pending(held, reason)

    def _pending(self, held: Held, reason: str) -> Outcome:
        """A try that failed: counted, and the digest left pending for the next run, saying why."""
        self.store.note_attempt(held.digest.id, reason)
        self.store.release(held.digest.id, self.owner)
        return _outcome(held, OutcomeStatus.PENDING, reason)

    def _send(self, held: Held) -> Outcome:
        down = self.down(held.channel, held.digest.subscriber)
        if down:
            return self._wait(held, down)
        unready = not_ready(held.channel, held.digest.subscriber, self.settings)
        if unready:
            return self._wait(held, unready)
        try:
            channel = self.channel(held.channel)
        except BotError as e:
            return self._pending(held, str(e))
        return self._try(held, channel)

    def _try(self, held: Held, channel: Channel) -> Outcome:
        """Send with retries (one try while the channel is suspect); confirm, fail or leave
        pending. The lease is renewed all along, inside a send and between tries (`Heartbeat`)."""
        with self.heartbeat.keep(held.digest.id) as kept:
            return self._tries(held, channel, kept)

    def _renew(self, did: str) -> bool:
        """Extend this sender's lease on `did`; False if another sender holds it now."""
        return self.store.renew(did, self.owner, self.lease)

    def _tries(self, held: Held, channel: Channel, beat: Kept) -> Outcome:
        digest, sub = held.digest, held.digest.subscriber
        leased = held.leased
        tries = 1 if held.channel in self._suspect else self.retry.attempts
        for attempt in range(tries):
            # The heartbeat renews the lease during each try; renewed here too for the time
            # between taking the digest over and its first try (a slow history lookup). If
            # another process has it (our lease ran out), that one sends it and we stop.
            if beat.lost:
                return _outcome(held, OutcomeStatus.SKIPPED, "taken over by another process")
            if time.monotonic() - leased > self.lease.total_seconds() / 3:
                if not self.store.renew(digest.id, self.owner, self.lease):
                    return _outcome(held, OutcomeStatus.SKIPPED, "taken over by another process")
                leased = time.monotonic()
            try:
                receipt = channel.send(digest)
            except TemplateError as e:
                # The user's template: no retry in this run mends it; the next run renders it
                # again, and sends it once the template is fixed.
                log.error("digest %s for %s: %s", digest.id, sub.id, e)
                return self._pending(
                    held, f"{e}; the digest waits, and the next run after the fix sends it"
                )
            except ChannelDownError as e:
                return self.channel_down(held, e)
            except SendError as e:
                record_refusal(self.store, self.settings, digest, e)  # a bounce (bot.bounces)
                if not e.transient:
                    if not self.store.mark_failed(digest.id, str(e), owner=self.owner):
                        _lost_confirmation(digest.id, "failed")
                    log.error("digest %s for %s failed: %s", digest.id, sub.id, e)
                    return _outcome(held, OutcomeStatus.FAILED, str(e))
                self.store.note_attempt(digest.id, str(e))
                log.warning(
                    "digest %s for %s: %s (try %d of %d)", digest.id, sub.id, e, attempt + 1, tries
                )
                if attempt + 1 < tries:
                    # The server may say how long to wait (Slack's Retry-After): never sooner.
                    self.sleep(
                        max(
                            self.retry.delay(attempt),
                            e.retry_after if isinstance(e, TransientSendError) else 0.0,
                        )
                    )
                    continue
                # Out of tries: stays pending, and the lease is let go so the next run retries it.
                self.store.release(digest.id, self.owner)
                if isinstance(e, UnreachableError):
                    self._unreachable(held.channel, e)
                return _outcome(held, OutcomeStatus.PENDING, str(e))
            except Exception as e:  # a bug in one digest must not stop the others
                log.exception("digest %s for %s: unexpected error", digest.id, sub.id)
                return self._pending(
                    held,
                    f"unexpected error ({type(e).__name__}: {e}); see the log, report it if it persists",
                )
            self._suspect.discard(held.channel)
            self.confirm_sent(digest.id, receipt.detail)
            return _outcome(held, OutcomeStatus.SENT, destination=receipt.destination)
        raise AssertionError("unreachable")


def _lost_confirmation(did: str, what: str) -> None:
    """A confirmation that did not count: another sender took the digest over meanwhile."""
    log.warning(
        "digest %s was %s, but another sender took it over meanwhile (its lease ran out): that "
        "one confirms it (Slack: it finds the post; email: it may re-send it, same Message-ID)",
        did,
        what,
    )
