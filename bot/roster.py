"""Who gets digests: subscribers from files plus active ones made on the web, minus those who left."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from .config import Settings
from .errors import ConfigError, Problem
from .gcpause import gc_paused
from .models import Interests, Subscriber
from .slack.members import slack_subscriber
from .store import Store, SubscriberMark, WebSubscriberRow
from .subscriptions import load_subscription_file, load_subscriptions
from .text import clip
from .zones import zone_or_utc


def web_subscriber(row: WebSubscriberRow) -> Subscriber:
    """The `Subscriber` a web row stands for (origin "web"). A stored zone this host does not
    know becomes UTC, with a warning: it never stops planning for the others."""
    return Subscriber(
        id=row.id,
        name=row.name or row.email,
        email=row.email,
        schedule=row.schedule,
        timezone=zone_or_utc(
            row.timezone, f"web subscriber {row.id}", "have them choose a zone on their manage page"
        ),
        max_items=row.max_items,
        interests=Interests.from_dict(row.interests),
        origin="web",
    )


def file_subscriber(
    settings: Settings, sid: str, known: Collection[str] | None = None
) -> Subscriber | None:
    """The subscriber of `subscriptions/<sid>.toml` as it says now, reading that file only (a web
    request about one subscriber, such as a feed reader's poll, must not parse 10,000 files).
    `known`: the topic slugs, when the caller holds them (else the taxonomy is read)."""
    from .match import known_topics

    folder = settings.resolve(settings.subscriptions_dir)
    path = folder / f"{sid}.toml"
    if path.parent != folder or sid.startswith("."):  # a name, never a path
        return None
    return load_subscription_file(
        path, known_topics(settings.topics_file) if known is None else known
    )


def address_of(settings: Settings, store: Store, sid: str) -> str | None:
    """The address `sid`'s digests go to now: its subscription file's (a file wins over a web
    row of the same id, as in `load_roster`), else its web row's; None when neither names one
    (a Slack member, an id no one has)."""
    sub = file_subscriber(settings, sid)
    if sub is not None:
        return sub.email or None
    row = store.web_subscriber(sid)
    return row.email if row is not None else None


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
    subs, problems = load_subscriptions(folder, known_topics(settings.topics_file))
    if require_folder and not folder.is_dir():
        raise ConfigError(problems[0].message if problems else "no such folder", path=str(folder))
    return subs, problems


@dataclass(frozen=True, slots=True)
class Member:
    """One subscriber as `status` and `check` show them: where they come from, whether they
    receive digests, and (file subscribers) the mark the web front recorded for them."""

    subscriber: Subscriber
    state: str  # active | paused | unsubscribed | pending confirmation
    since: datetime | None = None  # when the state began (None: a file subscriber never marked)
    mark: SubscriberMark | None = None  # a file subscriber's mark, applying or not

    @property
    def origin(self) -> str:
        """ "file", "web" or "slack"."""
        return self.subscriber.origin if self.subscriber.origin in ("web", "slack") else "file"

    @property
    def receives(self) -> bool:
        """Whether `run` sends this subscriber digests."""
        return self.state == "active"

    @property
    def old_mark(self) -> bool:
        """A mark made for an address the file no longer names: ignored."""
        return self.mark is not None and not self.mark.applies_to(self.subscriber.address)


_WEB_STATES = {"unconfirmed": "pending confirmation"}


def mark_text(mark: SubscriberMark) -> str:
    """ "unsubscribed on 2026-11-28 12:00 UTC (address a@b)", as `status` and `check` show a mark."""
    address = clip(mark.address) if mark.address is not None else "any address"
    return f"{mark.status} on {mark.updated_at:%Y-%m-%d %H:%M} UTC (address {address})"


def _file_member(sub: Subscriber, mark: SubscriberMark | None, store: Store) -> Member:
    """A file subscriber with its mark: one made without an address is tied to the file's now."""
    if mark is None:
        return Member(sub, "active")
    if mark.address is None and store.tie_subscriber_mark(sub.id, sub.address):
        mark = replace(mark, address=sub.address)
    state = mark.status if mark.applies_to(sub.address) else "active"
    return Member(sub, state, mark.updated_at if state != "active" else None, mark)


def roster_members(
    settings: Settings, store: Store, files: tuple[list[Subscriber], list[Problem]] | None = None
) -> tuple[list[Member], list[Problem]]:
    """Every subscriber, received digests or not: file subscribers (`files`, else read now) with
    the mark that wins over the file while it names the marked address, then web subscribers in
    every state. `load_roster` keeps those who receive digests."""
    subs, problems = files if files is not None else file_subscribers(settings)
    problems = list(problems)
    marks = store.subscriber_marks()
    members = [_file_member(s, marks.get(s.id), store) for s in subs]
    taken = {s.id for s in subs}
    for row in store.web_subscribers():
        if row.id in taken:
            if row.status == "active":
                problems.append(
                    Problem(
                        "(web subscribers)",
                        row.id,
                        "a subscription file has the same id; rename that file "
                        "(the web subscriber is skipped)",
                    )
                )
            continue
        since = row.confirmed_at if row.status == "active" else row.updated_at
        if row.status == "unconfirmed":
            since = row.requested_at
        members.append(Member(web_subscriber(row), _WEB_STATES.get(row.status, row.status), since))
    # Slack members (/papers), one query; their ids carry the team id, so they never clash.
    members += [Member(slack_subscriber(r), r.status, r.updated_at) for r in store.slack_members()]
    return members, problems


def load_roster(
    settings: Settings, store: Store, files: tuple[list[Subscriber], list[Problem]] | None = None
) -> tuple[list[Subscriber], list[Problem]]:
    """File subscribers (`files`, else read now) plus active web ones, minus those paused or
    unsubscribed (a mark for an address the file no longer names is ignored)."""
    with gc_paused():  # 100,000 web subscribers: see bot.gcpause
        members, problems = roster_members(settings, store, files)
    return receiving(members, store.suspensions()), problems


def receiving(members: Sequence[Member], suspended: Collection[str]) -> list[Subscriber]:
    """Who `run` sends digests to: the members who receive them, less those suspended by bounces
    (bot.bounces: until `digestbot resume`)."""
    return [m.subscriber for m in members if m.receives and m.subscriber.id not in suspended]


def census(members: Sequence[Member]) -> str:
    """Who receives digests and who does not, for `check`: "" when every subscriber comes from a
    file and receives digests, else e.g. "2 from files, 1 from the web; not receiving: 1
    unsubscribed, 1 pending confirmation"."""
    if all(m.origin == "file" and m.receives and not m.old_mark for m in members):
        return ""
    receiving = [m for m in members if m.receives]
    files = sum(m.origin == "file" for m in receiving)
    parts = [f"{files} from file{'s' if files != 1 else ''}"]
    slack = sum(m.origin == "slack" for m in receiving)
    parts.append(f"{len(receiving) - files - slack} from the web")
    if any(m.origin == "slack" for m in members):
        parts.append(f"{slack} from Slack")
    idle = Counter(m.state for m in members if not m.receives)
    text = ", ".join(parts)
    if idle:
        text += "; not receiving: " + ", ".join(f"{n} {state}" for state, n in sorted(idle.items()))
    old = sum(m.old_mark for m in members)
    if old:
        text += f"; {old} mark{'s' if old != 1 else ''} for an old address ignored"
    return text
