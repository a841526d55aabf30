"""What is due, and what goes into it: the one select step of a run and of a preview."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import Settings
from ..match import Matcher
from ..models import DigestItem, Entry, Subscriber
from ..slots import due_slot
from ..store import Store


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
) -> list[Plan]:
    """Match the lookback window's entries for each (subscriber, slot) in one pass; a plan each.

    Read-only: what each digest would hold if claimed now (entries delivered already are left out).
    """
    if not due:
        return []
    offered = store.entries_since(now - timedelta(days=settings.lookback_days))
    matcher = matcher or Matcher()
    matcher.fit(store.entries_since(now - timedelta(days=settings.corpus_days)) or offered)
    subs = [s for s, _ in due]
    results = matcher.match(
        offered,
        subs,
        delivered=store.delivered(s.id for s in subs),
        feedback=store.feedback_for(s.id for s in subs),
        unselected=False,
    )
    by_id: dict[str, Entry] = {e.id: e for e in offered}
    plans = []
    for sub, slot in due:
        chosen = [m for m in results.get(sub.id, []) if m.selected]
        items = tuple(
            DigestItem(by_id[m.entry_id], m.score, m.why, m.topic) for m in chosen[: sub.max_items]
        )
        plans.append(Plan(sub, slot, items, max(0, len(chosen) - sub.max_items)))
    return plans


def plan_digests(
    settings: Settings,
    store: Store,
    subscribers: Sequence[Subscriber],
    now: datetime,
    matcher: Matcher | None = None,
) -> DuePlans:
    """Match every due subscriber in one pass; the plans and the subscribers not due."""
    last = store.last_slots()
    due: list[tuple[Subscriber, datetime]] = []
    idle: list[Subscriber] = []
    for sub in subscribers:
        slot = due_slot(sub, now, last.get(sub.id))
        if slot is None:
            idle.append(sub)
        else:
            due.append((sub, slot))
    return DuePlans(select_entries(settings, store, due, now, matcher), idle)
