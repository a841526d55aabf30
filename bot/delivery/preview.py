"""The next digest of one subscriber, chosen as a run would choose it, without recording anything."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from ..config import Settings
from ..models import Digest, Subscriber
from ..render import render_email, slack_messages
from ..store import Store, digest_id
from .plan import coming_slot, select_entries


def next_digest(settings: Settings, store: Store, subscriber: Subscriber, now: datetime) -> Digest:
    """The digest `subscriber` gets next, from what the store holds now (read-only).

    Its slot is the one `run --once` would send now if one is due, else the next on the schedule.
    """
    slot = coming_slot(store, subscriber, now)
    [plan] = select_entries(settings, store, [(subscriber, slot)], now)
    return Digest(digest_id(subscriber.id, slot), subscriber, slot, plan.items, plan.more)


def write_preview(settings: Settings, digest: Digest, folder: Path) -> dict[str, Path]:
    """Write the digest as `<id>.html`, `<id>.txt` (the email's parts) and `<id>.json` (Slack's messages)."""
    folder.mkdir(parents=True, exist_ok=True)
    rendered = render_email(digest, settings)
    stem = folder / digest.id
    paths = {
        "html": stem.with_name(stem.name + ".html"),
        "txt": stem.with_name(stem.name + ".txt"),
        "json": stem.with_name(stem.name + ".json"),
    }
    paths["html"].write_text(rendered.html, encoding="utf-8")
    paths["txt"].write_text(f"Subject: {rendered.subject}\n\n{rendered.text}", encoding="utf-8")
    messages = slack_messages(digest, settings)
    paths["json"].write_text(
        json.dumps({"messages": messages}, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return paths
