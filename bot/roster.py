"""Who gets digests: subscribers from files plus active ones made on the web, minus those who left."""

from __future__ import annotations

from typing import Any

from .config import Settings
from .errors import Problem
from .models import Interests, Subscriber
from .store import Store, WebSubscriberRow
from .subscriptions import load_subscriptions

_INTEREST_KEYS = ("description", "keywords", "exclude", "topics", "authors")


def interests_from(data: dict[str, Any]) -> Interests:
    """`Interests` from the JSON object the store keeps for a web subscriber."""
    def phrases(key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        return tuple(str(v) for v in value) if isinstance(value, list) else ()

    return Interests(description=str(data.get("description", "")), keywords=phrases("keywords"),
                     exclude=phrases("exclude"), topics=phrases("topics"), authors=phrases("authors"))


def interests_data(interests: Interests) -> dict[str, Any]:
    """The JSON object the store keeps for `interests`."""
    return {"description": interests.description, **{k: list(getattr(interests, k)) for k in _INTEREST_KEYS[1:]}}


def web_subscriber(row: WebSubscriberRow) -> Subscriber:
    """The `Subscriber` a web row stands for (origin "web")."""
    return Subscriber(id=row.id, name=row.name or row.email, email=row.email, schedule=row.schedule,
                      timezone=row.timezone, max_items=row.max_items, interests=interests_from(row.interests),
                      origin="web")


def file_subscribers(settings: Settings) -> tuple[list[Subscriber], list[Problem]]:
    """The subscribers defined by files in the configured folder, with the problems found."""
    from .match import known_topics

    return load_subscriptions(settings.resolve(settings.subscriptions_dir), known_topics())


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
            problems.append(Problem(
                "(web subscribers)", row.id,
                "a subscription file has the same id; rename that file (the web subscriber is skipped)"))
            continue
        roster.append(web_subscriber(row))
    return roster, problems
