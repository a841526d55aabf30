"""Who gets digests: subscribers from files plus active ones made on the web, minus those who left."""

from __future__ import annotations

import os

from .config import Settings
from .errors import ConfigError, Problem
from .models import Interests, Subscriber
from .store import Store, WebSubscriberRow
from .subscriptions import load_subscriptions


def web_subscriber(row: WebSubscriberRow) -> Subscriber:
    """The `Subscriber` a web row stands for (origin "web")."""
    return Subscriber(
        id=row.id,
        name=row.name or row.email,
        email=row.email,
        schedule=row.schedule,
        timezone=row.timezone,
        max_items=row.max_items,
        interests=Interests.from_dict(row.interests),
        origin="web",
    )


def file_subscribers(
    settings: Settings, *, require_folder: bool = False
) -> tuple[list[Subscriber], list[Problem]]:
    """The subscribers defined by files in the configured folder, with the problems found.

    `require_folder`: a missing or unreadable folder raises `ConfigError` (with the fix) instead
    of coming back as a problem.
    """
    from .match import known_topics

    folder = settings.resolve(settings.subscriptions_dir)
    if require_folder and folder.is_dir():
        try:
            os.listdir(folder)
        except OSError as e:
            raise ConfigError(
                f"cannot read this folder ({e.strerror}); let the user digestbot runs as read it, "
                f"e.g. chmod a+rx {folder}",
                path=str(folder),
            ) from e
    subs, problems = load_subscriptions(folder, known_topics())
    if require_folder and not folder.is_dir():
        raise ConfigError(problems[0].message if problems else "no such folder", path=str(folder))
    return subs, problems


def load_roster(
    settings: Settings, store: Store, files: tuple[list[Subscriber], list[Problem]] | None = None
) -> tuple[list[Subscriber], list[Problem]]:
    """File subscribers (`files`, else read now) plus active web ones, minus those paused or unsubscribed."""
    subs, problems = files if files is not None else file_subscribers(settings)
    problems = list(problems)
    status = store.subscriber_statuses()
    roster = [s for s in subs if status.get(s.id, "active") == "active"]
    taken = {s.id for s in subs}
    for row in store.web_subscribers("active"):
        if row.id in taken:
            problems.append(
                Problem(
                    "(web subscribers)",
                    row.id,
                    "a subscription file has the same id; rename that file (the web subscriber is skipped)",
                )
            )
            continue
        roster.append(web_subscriber(row))
    suspended = store.suspensions()  # by bounces (bot.bounces): until `digestbot resume`
    return [s for s in roster if s.id not in suspended], problems
