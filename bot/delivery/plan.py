"""What is due, and what goes into it: the one select step of every run, tick and preview.

`run --once`, the scheduler's passes, the pool's dispatcher and `preview` all decide what is
due here (`due_slots`, from `bot.slots` and the ledger's last slots) and match every due
subscriber in one pass (`select_entries`), with a `FittedModel` when the caller keeps one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import Settings
from ..gcpause import gc_paused
from ..match import Matcher
from ..models import DigestItem, Entry, Subscriber
from ..slots import latest_slot, next_slot
from ..store import Store
from ..trending import Featured, arrange, trending_only
from .fitted import FittedModel


@dataclass(frozen=True, slots=True)
class Plan:
    """A digest to make: the subscriber, its slot and the entries chosen for it."""

    subscriber: Subscriber
    slot: datetime
    items: tuple[DigestItem, ...]
    more: int = 0  # selected entries left out by max_items


@dataclass(frozen=True, slots=True)
class DuePlans:
    """A plan for each subscriber due now, and the subscribers not due."""

    plans: list[Plan]
    idle: list[Subscriber]


def select_entries(
    settings: Settings,
    store: Store,
    due: Sequence[tuple[Subscriber, datetime]],
    now: datetime,
    matcher: Matcher | None = None,
    model: FittedModel | None = None,
    last: Mapping[str, datetime] | None = None,
) -> list[Plan]:
    """Match the lookback window's entries for each (subscriber, slot) in one pass; a plan each.

    Offered: entries published within `lookback_days` (an undated entry by when it was first
    seen). The matcher: `matcher` as given (fitted or not), else `model`'s (fitted on the
    `corpus_days` window, reused while the corpus is unchanged), else one fitted now.
    Read-only: what each digest would hold if claimed now (entries delivered already are left out).
    """
    if not due:
        return []
    offered = store.entries_published_since(now - timedelta(days=settings.lookback_days))
    subs = [s for s, _ in due]
    delivered = store.delivered(s.id for s in subs)
    feedback = store.feedback_for(s.id for s in subs)
    since = now - timedelta(days=settings.corpus_days)
    matched = [s for s in subs if not trending_only(s.interests)]  # the others need no scores
    if matcher is not None:
        matcher.fit(store.entries_since(since) or offered)
        results = matcher.match(
            offered, matched, delivered=delivered, feedback=feedback, unselected=False
        )
    else:
        with (model or FittedModel.for_settings(settings)).matcher(store, since, offered) as fitted:
            results = fitted.match(
                offered, matched, delivered=delivered, feedback=feedback, unselected=False
            )
    by_id: dict[str, Entry] = {e.id: e for e in offered}
    # trending subscribers: most popular since their last digest, or the selection re-ordered
    if last is None:  # the ledger's last slot per subscriber (`plan_digests` has read it)
        last = store.last_slots() if any(s.interests.trending for s in subs) else {}
    featured = Featured(store.entries_published_since, now - timedelta(settings.lookback_days + 1))
    plans = []
    for sub, slot in due:
        chosen = [m for m in results.get(sub.id, []) if m.selected]
        if sub.interests.trending:
            picks = [DigestItem(by_id[m.entry_id], m.score, m.why, m.topic) for m in chosen]
            done = delivered.get(sub.id, set())
            picks = arrange(sub, picks, offered, done, last.get(sub.id), featured)
            more = max(0, len(picks) - sub.max_items)
            plans.append(Plan(sub, slot, tuple(picks[: sub.max_items]), more))
            continue
        items = tuple(
            DigestItem(by_id[m.entry_id], m.score, m.why, m.topic) for m in chosen[: sub.max_items]
        )
        plans.append(Plan(sub, slot, items, max(0, len(chosen) - sub.max_items)))
    return plans


def slot_is_due(slot: datetime, last: datetime | None) -> bool:
    """Whether `slot` still needs its digest: the ledger's last slot for the subscriber is older."""
    return last is None or last < slot


def due_slots(
    store: Store,
    subscribers: Sequence[Subscriber],
    now: datetime,
    last: Mapping[str, datetime] | None = None,
) -> tuple[list[tuple[Subscriber, datetime]], list[Subscriber]]:
    """(subscriber, slot) for each one due now, and those not due: the one rule of what is due.

    Due: the latest slot at or before `now`, when the ledger holds no digest for it or a later one
    (`slots.due_slot`). The latest slot is worked out once per (schedule, time zone): 100,000
    subscribers share a handful of schedules, and each costs up to 60 cron steps. `last`: the
    ledger's last slot per subscriber, when the caller has read it (`store.last_slots`).
    """
    last = store.last_slots() if last is None else last
    latest: dict[tuple[str, str], datetime | None] = {}
    due: list[tuple[Subscriber, datetime]] = []
    idle: list[Subscriber] = []
    for sub in subscribers:
        key = (sub.schedule, sub.timezone)
        if key not in latest:
            latest[key] = latest_slot(sub, now)
        slot = latest[key]
        if slot is not None and slot_is_due(slot, last.get(sub.id)):
            due.append((sub, slot))
        else:
            idle.append(sub)
    return due, idle


def coming_slot(store: Store, subscriber: Subscriber, now: datetime) -> datetime:
    """The slot a subscriber's next digest is for: the one due now if any (what `run --once`
    would send now), else the next one on its schedule (else `now`, for a schedule that never fires)."""
    due, _ = due_slots(store, [subscriber], now)
    if due:
        return due[0][1]
    return next_slot(subscriber, now) or now


def plan_digests(
    settings: Settings,
    store: Store,
    subscribers: Sequence[Subscriber],
    now: datetime,
    matcher: Matcher | None = None,
    model: FittedModel | None = None,
) -> DuePlans:
    """Match every due subscriber in one pass; the plans and the subscribers not due."""
    with gc_paused():  # see bot.gcpause
        last = store.last_slots()  # read once: what is due, and trending's "since the last digest"
        due, idle = due_slots(store, subscribers, now, last)
        return DuePlans(select_entries(settings, store, due, now, matcher, model, last), idle)
