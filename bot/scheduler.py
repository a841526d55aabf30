"""`digestbot run`: APScheduler jobs that call the pipeline, and nothing else.

One process, APScheduler 3 with its in-memory job store: a fetch job per source, a digest job
per subscriber on its own slots (DST-safe, see `slots`), and a watcher that re-reads the
subscription files when they change or on SIGHUP. Every job is `coalesce=True`,
`max_instances=1`, with an explicit `misfire_grace_time`. The ledger, not the scheduler, decides
what is sent: a job that fires twice, late, or in two processes makes at most one digest per slot.

A subscriber's digest job only marks it due; one pass job (`digest_pass`), started by the first
mark and run a moment later (`GATHER`), plans every subscriber marked meanwhile in one
`run_once`, as `run --once` does, with the process's `FittedModel` (the corpus is fitted once
and reused until a fetch stores something new). Marks that come while a pass runs are served
by the same job right after it.

What a pass could not finish is tried again: a digest left pending (its server down, its
template broken, its channel not set up) and the marks of a pass the store failed (they are
kept). A retry job looks every minute whether a retry is due; the retry pass resolves every
subscriber's pending digests and serves the kept marks. The first retry comes `RETRY_FIRST`
after the pass; each retry that sends nothing doubles the wait, up to `RETRY_CAP`. Each pass
that leaves digests waiting logs one line: which, why, and when they are tried again.
"""

from __future__ import annotations

import itertools
import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .bounces.job import add_bounce_job
from .config import Settings, SourceSpec
from .delivery import Deliverer, FittedModel, Outcome, RetryPolicy, RunReport, run_once
from .errors import BotError, Problem
from .ingest import fetch_all, fetch_source, http_session
from .jobs import add_repeating
from .models import OutcomeStatus, Subscriber
from .roster import file_subscribers, load_roster
from .slots import SlotTrigger
from .sources import interrupt_waits
from .store import Store, open_store

log = logging.getLogger(__name__)

# A digest job may start this late (the machine slept, the clock jumped, the workers were
# busy) and still run; coalesce=True folds every missed firing into that one run, and the
# ledger sends one digest for the latest slot. Later than this, the next slot takes over.
DIGEST_GRACE = timedelta(hours=12)
WATCH_EVERY = timedelta(seconds=10)  # how often the subscription folder is checked for changes
WORKERS = 4  # jobs run at once (the digest pass, fetches, marks)
# How long the first subscriber marked due waits for the others of the same minute before the
# pass starts: APScheduler runs the jobs due at one instant within milliseconds of each other.
GATHER = timedelta(seconds=1)
# A digest left pending, or a pass the store failed, is tried again this long after; each retry
# that sends nothing doubles the wait, up to RETRY_CAP (the cadence of `run --once` from cron),
# so a server that stays down is tried a few times an hour and the log gets a line each time.
RETRY_FIRST = timedelta(minutes=2)
RETRY_CAP = timedelta(minutes=15)
RETRY_TICK = timedelta(minutes=1)  # how often the retry job looks whether a retry is due
SHOWN = 5  # digest ids named in the line that says what waits
JOB_DEFAULTS: dict[str, Any] = {
    "coalesce": True,
    "max_instances": 1,
    "misfire_grace_time": int(DIGEST_GRACE.total_seconds()),
}


def _signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """What identifies the folder's contents cheaply: each file's name, size and mtime."""
    try:
        files = sorted(folder.glob("*.toml"))
        return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    except OSError:
        return ()


def _log(outcomes: Sequence[Outcome]) -> None:
    """A line per digest sent or failed (digests left pending are told by `_waiting_line`)."""
    for o in outcomes:
        if o.status == OutcomeStatus.FAILED:
            log.warning("digest %s for %s: %s: %s", o.digest_id, o.subscriber, o.status, o.reason)
        elif o.status == OutcomeStatus.SENT:
            log.info(
                "digest %s for %s: sent %d entries to %s",
                o.digest_id,
                o.subscriber,
                o.entries,
                o.destination,
            )


def _waiting_line(waiting: Sequence[Outcome], at: datetime) -> str:
    """One line for the digests a pass left pending: which, why (most common first), and when
    they are tried again."""
    ids = [o.digest_id or o.subscriber for o in waiting]
    named = ", ".join(ids[:SHOWN]) + (f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else "")
    reasons = Counter(o.reason for o in waiting).most_common()
    why = "; ".join(f"{n} × {r}" if len(reasons) > 1 else r for r, n in reasons[:3])
    if len(reasons) > 3:
        why += f"; {len(reasons) - 3} other reasons"
    n = len(waiting)
    return (
        f"{n} digest{'s' if n != 1 else ''} wait{'s' if n == 1 else ''} ({named}): {why}; "
        f"tried again at {at:%Y-%m-%d %H:%M} UTC"
    )


class Runner:
    """The long-running scheduler around one store: start, reload, stop."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings)
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults=JOB_DEFAULTS,
            executors={"default": ThreadPoolExecutor(WORKERS)},
        )
        self.stopping = threading.Event()
        self.subscribers: dict[str, Subscriber] = {}
        self.problems: list[Problem] = []
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._web_seen: tuple[object, ...] | None = None
        self._reload_lock = threading.Lock()
        self.model = FittedModel.for_settings(
            settings
        )  # the fitted matcher, shared by catch-up and every pass
        self.passes: list[int] = []  # subscribers served by each digest pass (a public figure)
        self._due: set[str] = set()
        self._due_lock = threading.Lock()
        self._pass_planned = False
        self._pass_ids = itertools.count(1)
        self._retry_all = False  # the next pass also resolves every subscriber's pending digests
        self._retry_at: datetime | None = None  # when a retry pass is due; None: nothing waits
        self._retry_wait = RETRY_FIRST  # the wait after the next pass that leaves something
        self.send_retry = RetryPolicy()  # the tries of one digest within a pass

    @property
    def folder(self) -> Path:
        """The subscription folder."""
        return self.settings.resolve(self.settings.subscriptions_dir)

    # --- jobs ------------------------------------------------------------------------------
    def fetch_job(self, spec: SourceSpec) -> None:
        """Fetch one source into the store (errors are recorded by `fetch_source`, not raised)."""
        if self.stopping.is_set():
            return
        try:
            with http_session() as http:
                report = fetch_source(spec, self.settings, self.store, http)
        except BotError as e:  # the store itself failed: try again at the next interval
            log.error("fetch %s: %s", spec.name, e)
            return
        if report.error:
            log.warning("fetch %s failed: %s", spec.name, report.error)

    def digest_job(self, subscriber_id: str) -> None:
        """Mark this subscriber due (its slot fired); the pass job sends its digest with the others."""
        if self.stopping.is_set():
            return
        with self._due_lock:
            self._due.add(subscriber_id)
        self._plan_pass()

    def retry_job(self) -> None:
        """When a retry is due, plan a pass that resolves every pending digest and serves the
        marks a failed pass kept (every `RETRY_TICK`; nothing to do costs no query)."""
        if self.stopping.is_set():
            return
        with self._due_lock:
            if self._retry_at is None or datetime.now(UTC) < self._retry_at:
                return
            self._retry_at = None
            self._retry_all = True
        self._plan_pass()

    def _plan_pass(self) -> None:
        """Start the pass job a moment from now, unless one is planned or running (it serves
        the marks and the retry too)."""
        with self._due_lock:
            if self._pass_planned:
                return
            self._pass_planned = True
        self.scheduler.add_job(
            self.digest_pass,
            DateTrigger(datetime.now(UTC) + GATHER),
            id=f"digests:{next(self._pass_ids)}",
            name="digest pass",
            misfire_grace_time=int(DIGEST_GRACE.total_seconds()),
        )

    def digest_pass(self) -> None:
        """Send the digests of every subscriber marked due, in one plan pass, until none is left.

        Each pass resolves the pending digests of those subscribers first (of every subscriber,
        when a retry is due), then plans them all at once (`run_once`), with the fitted model
        kept by this process. A pass the store fails keeps its marks for the retry.
        """
        while True:
            with self._due_lock:
                ids, self._due = self._due, set()
                retry, self._retry_all = self._retry_all, False
                if (not ids and not retry) or self.stopping.is_set():
                    self._due |= ids
                    self._pass_planned = False
                    return
            if not self._serve(ids, retry):
                with self._due_lock:
                    self._due |= ids  # their marks still count: the retry serves them
                    self._pass_planned = False
                return

    def _serve(self, ids: set[str], retry: bool) -> bool:
        """One pass: the marked subscribers' digests (and every pending one, on a retry).
        False if the store (or a bug) stopped it; then a retry is planned."""
        current = self.subscribers  # once: a reload (SIGHUP) may replace it meanwhile
        subs = [current[i] for i in sorted(ids) if i in current]
        others = [s for s in current.values() if s.id not in ids] if retry else []
        deliverer: Deliverer | None = None
        try:
            deliverer = self._deliverer()
            recovered = deliverer.recover(others, self.stopping.is_set) if others else []
            report = self._send_due(subs, deliverer) if subs else RunReport()
        except Exception as e:  # the store (BotError), or a bug: the passes to come still run
            at = f"{self._settle([], retried=retry, failed=True):%Y-%m-%d %H:%M}"
            what = f"digest pass ({len(subs)} due{', retry of pending digests' if retry else ''})"
            if isinstance(e, BotError):
                log.error("%s: %s; tried again at %s UTC", what, e, at)
            else:
                log.exception("%s: unexpected error; tried again at %s UTC", what, at)
            return False
        finally:
            if deliverer is not None:
                deliverer.close()
        if subs:
            self.passes.append(len(subs))
            log.info("digest pass: %d subscribers due (%d fits so far)", len(subs), self.model.fits)
        outcomes = recovered + report.recovered + report.outcomes
        _log(outcomes)
        self._settle(outcomes, retried=retry)
        return True

    def _deliverer(self) -> Deliverer:
        """A sender for one pass (closed at its end): the channels' connections live that long."""
        return Deliverer(self.settings, self.store, retry=self.send_retry)

    def _send_due(self, subs: Sequence[Subscriber], deliverer: Deliverer) -> RunReport:
        """`run_once` for `subs` as the scheduler runs it: its fitted model, stopping on SIGTERM."""
        return run_once(
            self.settings,
            self.store,
            subs,
            deliverer=deliverer,
            stop=self.stopping.is_set,
            model=self.model,
        )

    def _settle(self, outcomes: Sequence[Outcome], retried: bool, failed: bool = False) -> datetime:
        """After a pass: when to retry what it left (logged in one line), and with what wait.

        A pass that leaves nothing plans no retry, or, if it was the retry, ends the retries. One
        that leaves something plans one (keeping any planned already); a retry that left
        something plans the next, after the same first wait if it sent something, else twice
        the last wait (up to `RETRY_CAP`). Returns when the next retry is due.
        """
        last = {o.digest_id or o.subscriber: o for o in outcomes}  # a digest's last outcome
        outcomes = list(last.values())
        waiting = [o for o in outcomes if o.status == OutcomeStatus.PENDING]
        now = datetime.now(UTC)
        with self._due_lock:
            if retried:
                if not waiting and not failed:
                    self._retry_wait, self._retry_at = RETRY_FIRST, None
                    return now
                moved = any(
                    o.status in (OutcomeStatus.SENT, OutcomeStatus.FAILED) for o in outcomes
                )
                self._retry_wait = RETRY_FIRST if moved else min(2 * self._retry_wait, RETRY_CAP)
                self._retry_at = now + self._retry_wait
            elif (waiting or failed) and self._retry_at is None:
                self._retry_at = now + self._retry_wait
            at = self._retry_at or now
        if waiting:
            log.warning("%s", _waiting_line(waiting, at))
        return at

    def watch_job(self) -> None:
        """Re-read the subscribers if a file, a web subscriber or a status changed since the last look."""
        if _signature(self.folder) != self._seen or self._web_signature() != self._web_seen:
            self.reload()

    def _web_signature(self) -> tuple[object, ...]:
        """What the store says of subscribers: web rows (and their edits) and pause/unsubscribe marks."""
        return (
            tuple(sorted(self.store.subscriber_statuses().items())),
            self.store.web_subscribers_changed(),
            self.store.slack_members_changed(),  # /papers (bot.slack)
            tuple(sorted(self.store.suspensions())),  # bounces suspend (bot.bounces)
        )

    # --- subscribers -------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read the subscribers (files and web) and add, change or remove digest jobs to match.

        A file that has become broken keeps its subscriber's last good version (and logs the
        problem), so a typo while editing does not cancel anyone's digest.
        """
        with self._reload_lock:
            self._seen = _signature(self.folder)
            subs, problems = file_subscribers(self.settings)  # the files in self.folder
            fresh = {s.id: s for s in subs}
            for p in problems:
                log.warning("%s (this subscriber keeps its last good settings, if any)", p)
                stem = Path(p.path).stem
                if stem in self.subscribers and stem not in fresh and Path(p.path).exists():
                    fresh[stem] = self.subscribers[stem]
            self._web_seen = self._web_signature()
            # Web subscribers join the file ones; a pause or unsubscribe recorded in the store wins.
            roster, problems = load_roster(
                self.settings, self.store, (list(fresh.values()), problems)
            )
            for p in problems:
                if p.path == "(web subscribers)":
                    log.warning("%s", p)
            self.problems = problems
            self._sync({s.id: s for s in roster})

    def _sync(self, fresh: dict[str, Subscriber]) -> None:
        old = self.subscribers
        self.subscribers = fresh
        for sid in old.keys() - fresh.keys():
            self.scheduler.remove_job(f"digest:{sid}")
            log.info("subscriber %s removed", sid)
        for sid, sub in fresh.items():
            if old.get(sid) == sub and self.scheduler.get_job(f"digest:{sid}") is not None:
                continue
            add_repeating(
                self.scheduler,
                self.digest_job,
                SlotTrigger(sub),
                f"digest:{sid}",
                f"digest {sid}",
                args=[sid],
                grace_seconds=int(DIGEST_GRACE.total_seconds()),
            )
            log.info("subscriber %s: digests on %r in %s", sid, sub.schedule, sub.timezone)

    def add_fetch_jobs(self, sources: Sequence[SourceSpec]) -> None:
        """One interval job per source, with jitter so sources do not all fetch at once."""
        for spec in sources:
            every = timedelta(minutes=spec.interval_minutes)
            add_repeating(
                self.scheduler,
                self.fetch_job,
                IntervalTrigger(
                    minutes=spec.interval_minutes, jitter=min(60, int(every.total_seconds() / 10))
                ),
                f"fetch:{spec.name}",
                f"fetch {spec.name}",
                args=[spec],
                grace_seconds=int(every.total_seconds()),
            )

    # --- life cycle ----------------------------------------------------------------------------
    def catch_up(self) -> None:
        """What a start does before the jobs: resolve pending digests, fetch, send what is due.

        After hours of downtime each subscriber gets one digest, for its latest slot. What is
        left pending is tried again by the retry job.
        """
        subs = list(self.subscribers.values())
        deliverer = self._deliverer()
        try:
            outcomes = deliverer.recover(subs, self.stopping.is_set)  # crash leftovers first
            _log(outcomes)
            if self.stopping.is_set():
                return
            for r in fetch_all(self.settings, self.store):
                if r.error:
                    log.warning("fetch %s failed: %s", r.source, r.error)
            if self.stopping.is_set():
                return
            report = self._send_due(subs, deliverer)
        finally:
            deliverer.close()
        _log(report.recovered + report.outcomes)
        self._settle(outcomes + report.recovered + report.outcomes, retried=False)

    def start(self) -> None:
        """Load the subscribers, catch up, then start the jobs."""
        interrupt_waits(False)  # a Runner stopped before in this process ended them
        self.scheduler.start(paused=True)  # jobs can be added; none runs before catch-up is done
        self.reload()
        self.add_fetch_jobs(self.settings.sources)
        every = IntervalTrigger(seconds=int(WATCH_EVERY.total_seconds()))
        add_repeating(self.scheduler, self.watch_job, every, "watch", "watch subscriptions")
        every = IntervalTrigger(seconds=int(RETRY_TICK.total_seconds()))
        add_repeating(self.scheduler, self.retry_job, every, "retry", "retry waiting digests")
        add_bounce_job(self.scheduler, self.settings, self.store)  # bot.bounces
        self.catch_up()
        if not self.stopping.is_set():
            self.scheduler.resume()

    def stop(self) -> None:
        """Start nothing new, wait for the jobs running now to finish, release the store."""
        self.stopping.set()
        interrupt_waits()  # a fetch waiting out a Retry-After gives up now
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        interrupt_waits(False)  # its jobs are done: later fetches in this process may wait again
        self.store.close()


def run_scheduler(settings: Settings, ready: Callable[[Runner], None] | None = None) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP re-reads the subscriptions. Returns after a clean stop."""
    runner = Runner(settings)
    reload_asked = threading.Event()
    wake = threading.Event()

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        log.warning(
            "got %s: finishing the digest in flight, starting nothing new",
            signal.Signals(signum).name,
        )
        runner.stopping.set()
        interrupt_waits()  # a fetch waiting out a Retry-After gives up now
        wake.set()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        reload_asked.set()
        wake.set()

    previous = {s: signal.signal(s, on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
    try:
        log.warning(
            "digestbot scheduler starting at %s", datetime.now(UTC).isoformat(timespec="seconds")
        )
        runner.start()
        if ready:
            ready(runner)
        while not runner.stopping.is_set():
            wake.wait(1.0)
            wake.clear()
            if reload_asked.is_set() and not runner.stopping.is_set():
                reload_asked.clear()
                runner.reload()
    finally:
        runner.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    log.warning("digestbot scheduler stopped")
