"""The scheduler's bounce job: `digestbot run` reads the bounce mailbox every few minutes."""

from __future__ import annotations

import logging

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ..config import Settings
from ..errors import BotError
from ..jobs import add_repeating
from ..store import Store
from .mailbox import check_mailbox

log = logging.getLogger("bot.bounces")


def bounce_job(settings: Settings, store: Store) -> None:
    """One look at the bounce mailbox; a failure is logged and tried again at the next interval."""
    try:
        report = check_mailbox(settings, store)
    except BotError as e:
        log.error("bounce mailbox: %s", e)
        return
    if report.recorded or report.left:
        log.info(
            "bounce mailbox: %d recorded, %d left (%s)",
            len(report.recorded),
            len(report.left),
            "; ".join(h.verdict.reason for h in report.left) or "none left",
        )


def add_bounce_job(scheduler: BaseScheduler, settings: Settings, store: Store) -> None:
    """Add the bounce job when DIGESTBOT_BOUNCE_IMAP_URL is set (every [bounces] check_minutes)."""
    if not settings.bounce_imap_url:
        return
    every = IntervalTrigger(minutes=settings.bounce_check_minutes)
    add_repeating(
        scheduler, bounce_job, every, "bounces", "read the bounce mailbox", (settings, store)
    )
