"""APScheduler jobs as digestbot runs them: one instance at a time, missed runs coalesced into
one, replaced when added again under the same id (a reload, a restart of the scheduler)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger


def add_repeating(
    scheduler: BaseScheduler,
    func: Callable[..., Any],
    trigger: BaseTrigger,
    job_id: str,
    name: str,
    args: Sequence[Any] = (),
    grace_seconds: int = 60,
) -> None:
    """Add (or replace) the job `job_id`: never two runs at once, missed runs as one, a run
    still made when it starts up to `grace_seconds` late."""
    scheduler.add_job(
        func,
        trigger,
        args=list(args),
        id=job_id,
        name=name,
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=grace_seconds,
    )
