"""One run of the single process: resolve pending digests, then send every digest due now."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..config import Settings
from ..models import Outcome, OutcomeStatus, Subscriber
from ..store import Store
from .ahead import deliver_ahead
from .fitted import FittedModel
from .plan import Plan, plan_digests
from .recover import recover_pending
from .send import Sender

# Its own logger, so `run --once`, which prints the line itself even under -q, can quiet it.
outbox_log = logging.getLogger("bot.delivery.outbox")


class Deliverer(Sender):
    """A `Sender` that also sends a run's plans (rendering ahead) and resolves crash leftovers."""

    def deliver_all(
        self,
        plans: Sequence[Plan],
        stop: Callable[[], bool] | None = None,
        progress: Callable[[Outcome], None] | None = None,
    ) -> list[Outcome]:
        """Each plan claimed, sent and confirmed in order, the next rendered meanwhile (`ahead`)."""
        return deliver_ahead(self, plans, stop, progress)

    def recover(
        self, subscribers: Sequence[Subscriber], stop: Callable[[], bool] | None = None
    ) -> list[Outcome]:
        """Resolve digests left pending by a crash or a transient failure, before anything new."""
        return recover_pending(self, subscribers, stop)


@dataclass(slots=True)
class RunReport:
    """What `run_once` did, subscriber by subscriber."""

    recovered: list[Outcome] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def outbox_note(self, settings: Settings) -> str:
        """One line: how many digests went to the outbox, not to anyone (empty when none did)."""
        n = sum(
            o.status == OutcomeStatus.SENT and o.channel == "outbox"
            for o in self.recovered + self.outcomes
        )
        return outbox_line(settings, n)


def outbox_line(settings: Settings, n: int, went: str = "went to") -> str:
    """ "N digests went to (`went`) the outbox (<dir>), not to anyone: …", or "" when n is 0: what
    `run --once` says after sending, and `run --workers celery` of what it queued."""
    if not n:
        return ""
    return (
        f"{n} digest{'s' if n != 1 else ''} {went} the outbox "
        f"({settings.resolve(settings.outbox_dir)}), not to anyone: outbox_dir in "
        f"{settings.config_path or 'the config'} chooses it while email or Slack is not "
        "configured, and they will not be sent later"
    )


def run_once(
    settings: Settings,
    store: Store,
    subscribers: Sequence[Subscriber],
    now: datetime | None = None,
    deliverer: Deliverer | None = None,
    progress: Callable[[Outcome], None] | None = None,
    stop: Callable[[], bool] | None = None,
    model: FittedModel | None = None,
) -> RunReport:
    """Resolve pending digests, then send every digest that is due now. Fetching is the caller's.

    `stop` is asked before each digest: once it says yes, the digest in flight is finished and
    nothing new is started (the scheduler's SIGTERM). `model`: a fitted matcher kept between
    runs (the scheduler's), reused while the corpus is unchanged.
    """
    now = now or datetime.now(UTC)
    own = deliverer is None
    deliverer = deliverer or Deliverer(settings, store)
    report = RunReport()
    try:
        report.recovered = deliverer.recover(subscribers, stop)
        if stop is not None and stop():
            return report
        due = plan_digests(settings, store, subscribers, now, model=model)
        report.outcomes = deliverer.deliver_all(due.plans, stop, progress)
        for sub in due.idle:
            report.outcomes.append(Outcome(sub.id, OutcomeStatus.NOT_DUE, 0, sub.address))
    finally:
        if own:
            deliverer.close()
    if note := report.outbox_note(settings):
        outbox_log.warning("%s", note)
    return report
