"""The next digest of one subscriber, chosen as a run would choose it, without recording anything."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from .config import Settings
from .match import Matcher
from .models import Digest, DigestItem, Subscriber
from .render import render_email, slack_messages
from .slots import next_slot
from .store import Store, digest_id


def next_digest(settings: Settings, store: Store, subscriber: Subscriber, now: datetime) -> Digest:
    """The digest `subscriber` would get at its next slot from what the store holds now (read-only)."""
    slot = next_slot(subscriber, now) or now
    offered = store.entries_since(now - timedelta(days=settings.lookback_days))
    matcher = Matcher().fit(store.entries_since(now - timedelta(days=settings.corpus_days)) or offered)
    results = matcher.match(offered, [subscriber], delivered=store.delivered([subscriber.id]),
                            feedback=store.feedback_for([subscriber.id]))
    by_id = {e.id: e for e in offered}
    chosen = [m for m in results.get(subscriber.id, []) if m.selected]
    items = tuple(DigestItem(by_id[m.entry_id], m.score, m.why, m.topic) for m in chosen[: subscriber.max_items])
    return Digest(digest_id(subscriber.id, slot), subscriber, slot, items, max(0, len(chosen) - subscriber.max_items))


def write_preview(settings: Settings, digest: Digest, folder: Path) -> dict[str, Path]:
    """Write the digest as `<id>.html`, `<id>.txt` (the email's parts) and `<id>.json` (Slack's messages)."""
    folder.mkdir(parents=True, exist_ok=True)
    rendered = render_email(digest, settings)
    stem = folder / digest.id
    paths = {"html": stem.with_name(stem.name + ".html"), "txt": stem.with_name(stem.name + ".txt"),
             "json": stem.with_name(stem.name + ".json")}
    paths["html"].write_text(rendered.html, encoding="utf-8")
    paths["txt"].write_text(f"Subject: {rendered.subject}\n\n{rendered.text}", encoding="utf-8")
    messages = slack_messages(digest, settings)
    paths["json"].write_text(json.dumps({"messages": messages}, ensure_ascii=False, indent=2), encoding="utf-8")
    return paths
