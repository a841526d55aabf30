"""The Celery app of a deployment (settings checked, delivery task registered); a worker process."""

from __future__ import annotations

import os
import socket
from typing import Any

from ..config import Settings
from ..delivery import LEASE
from ..errors import BotError
from .task import MAX_RETRIES, TASK
from .worker import close_deliverer, run_task


def require_pool(settings: Settings) -> None:
    """Refuse to run a worker pool on settings that cannot carry one, saying the fix."""
    try:
        import celery  # noqa: F401 - only to know it is there
    except ImportError:
        raise BotError(
            "the worker pool needs Celery, which is not installed; pip install 'digestbot[pool]' "
            "(from the repository: pip install '.[pool]')"
        ) from None
    if not settings.broker_url:
        raise BotError(
            "no broker for the worker pool; set DIGESTBOT_BROKER_URL, e.g. "
            "redis://127.0.0.1:6379/0 or amqp://guest@127.0.0.1:5672//"
        )
    if settings.database_url.startswith("sqlite"):
        raise BotError(
            f"the worker pool needs PostgreSQL, but the store is SQLite ({settings.database_url}): "
            "workers on several machines cannot share one SQLite file; set DIGESTBOT_DATABASE_URL="
            "postgresql+psycopg://user@host:5432/digestbot (or run without --workers celery)"
        )


def make_app(settings: Settings) -> Any:
    """The Celery app of this deployment, with the delivery task registered."""
    require_pool(settings)
    from celery import Celery

    app = Celery("digestbot", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        worker_hijack_root_logger=False,  # keep digestbot's handlers, which mask secrets
        task_acks_late=True,  # acknowledge after the task ran: a killed worker's task comes back
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # hold no more than the digest in hand
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        # Redis only: a received task not acknowledged within this goes back to the queue (the
        # task of a killed worker). Longer than any task runs; a retry's countdown stays below it.
        broker_transport_options={"visibility_timeout": LEASE.total_seconds()},
    )
    app.digestbot_settings = settings

    @app.task(
        name=TASK,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,  # type: ignore[untyped-decorator]
        max_retries=MAX_RETRIES,
    )
    def deliver(task: Any, did: str, subscriber: dict[str, Any]) -> str:
        """Send one claimed digest: take it over, send it, confirm it."""
        return run_task(task, did, subscriber)

    return app


def start_worker(settings: Settings, loglevel: str = "INFO") -> None:
    """Run a Celery worker for this deployment in this process until it is stopped."""
    require_pool(settings)
    app = make_app(settings)
    # solo: one digest at a time per process; the owner token host:pid then names exactly the
    # process that holds a digest, so a SIGKILLed worker's digest is taken over at once.
    # Scale by running more `digestbot worker` processes.
    try:
        app.worker_main(
            argv=[
                "worker",
                "--pool=solo",
                f"--queues={settings.queue}",
                f"--loglevel={loglevel}",
                f"--hostname=digestbot.{os.getpid()}@{socket.gethostname()}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
    finally:
        close_deliverer(app)
