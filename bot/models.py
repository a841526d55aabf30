"""Frozen dataclasses that flow through the pipeline; no I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Entry:
    """One paper or post, under its canonical id (``arxiv:2401.12345`` or a normalized guid/link)."""

    id: str
    title: str
    summary: str = ""
    url: str = ""
    authors: tuple[str, ...] = ()
    published: datetime | None = None
    source: str = ""
    tags: tuple[str, ...] = ()
    # Source-specific extras kept on the entry: upvotes, hf_url, ai_keywords, github_repo,
    # version, announce_type, pdf_url, doi ... JSON-serializable values only.
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Interests:
    """What a subscriber cares about, as written in the subscription file."""

    description: str = ""
    keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One subscriber: a file ``subscriptions/<id>.toml`` or a row made on the web."""

    id: str
    name: str = ""
    email: str = ""
    slack_channel: str = ""
    slack_webhook_env: str = ""
    schedule: str = "0 8 * * *"
    timezone: str = "UTC"
    max_items: int = 10
    interests: Interests = field(default_factory=Interests)
    origin: str = ""  # the file it came from, or "web"
    # The subscription file's keys for channels other than the built-in ones above (a channel
    # declares them in `fields`; `bot.channels.field_value` reads either), e.g. webhook_url.
    contact: Mapping[str, str] = field(default_factory=dict, hash=False)  # hashable as before

    @property
    def address(self) -> str:
        """Where the digest goes: an email address, a Slack channel or webhook variable, or another channel's field."""
        if self.email or self.slack_channel or self.slack_webhook_env:
            return self.email or self.slack_channel or f"${self.slack_webhook_env}"
        return next((v for v in self.contact.values() if v), "$")


@dataclass(frozen=True, slots=True)
class Match:
    """An entry scored for one subscriber, with the reasons it was (or was not) chosen."""

    entry_id: str
    score: float
    selected: bool
    why: tuple[str, ...] = ()
    topic: str = ""


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One entry in a digest, with why it was chosen."""

    entry: Entry
    score: float
    why: tuple[str, ...] = ()
    topic: str = ""


@dataclass(frozen=True, slots=True)
class Digest:
    """The entries chosen for one subscriber at one scheduled slot."""

    id: str
    subscriber: Subscriber
    slot: datetime
    items: tuple[DigestItem, ...]
    more: int = 0  # selected entries left out of this digest by max_items


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a channel reports after a successful send."""

    channel: str
    destination: str
    detail: str = ""  # the SMTP reply, the Slack ts, or the outbox file path


@dataclass(frozen=True, slots=True)
class Delivery:
    """A digest's row in the ledger."""

    digest_id: str
    subscriber_id: str
    slot: datetime
    status: str  # pending | sent | failed
    channel: str = ""
    entry_ids: tuple[str, ...] = ()
    attempts: int = 0
    created_at: datetime | None = None
    sent_at: datetime | None = None
    receipt: str = ""
    reason: str = ""
