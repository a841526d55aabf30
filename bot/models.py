"""Frozen dataclasses that flow through the pipeline; no I/O here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
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
    trending: bool = False  # the most upvoted papers since the last digest (issue 13)
    min_upvotes: int | None = None  # a trending digest's floor

    @property
    def has_subject(self) -> bool:
        """Whether these interests name something to match papers on (a description, keywords,
        topics or authors); `trending` alone selects by popularity instead."""
        return bool(self.description or self.keywords or self.topics or self.authors)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data: the object the store keeps for a web subscriber, and a task message's."""
        return {
            "description": self.description,
            **{k: list(getattr(self, k)) for k in _PHRASES},
            "trending": self.trending,
            "min_upvotes": self.min_upvotes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interests:
        """`Interests` back from `to_dict`'s data; a missing or malformed key reads as empty."""
        get = data.get  # (called for 100,000 web subscribers per pass: no generators here)
        floor = get("min_upvotes")
        return cls(
            description=str(get("description") or ""),
            keywords=_phrases(get("keywords")),
            exclude=_phrases(get("exclude")),
            topics=_phrases(get("topics")),
            authors=_phrases(get("authors")),
            trending=data.get("trending") is True,
            min_upvotes=floor if isinstance(floor, int) and not isinstance(floor, bool) else None,
        )


_PHRASES = ("keywords", "exclude", "topics", "authors")  # Interests' list fields, in order


def _phrases(value: Any) -> tuple[str, ...]:
    """A list field of `Interests.from_dict`: each item as text, or () when it is not a list."""
    return tuple(map(str, value)) if isinstance(value, list | tuple) else ()


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data (a worker task's payload); `from_dict` reads it back."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**data, "interests": self.interests.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Subscriber:
        """A subscriber back from `to_dict`'s data; keys this version does not know are ignored
        (a newer scheduler may send fields an older worker lacks)."""
        known = {f.name for f in fields(cls)} - {"interests"}
        return cls(
            **{k: v for k, v in data.items() if k in known},
            interests=Interests.from_dict(data.get("interests") or {}),
        )


@dataclass(slots=True)
class FetchState:
    """What a source remembers between fetches (kept per source in the store)."""

    etag: str = ""
    last_modified: str = ""
    # Source-specific memory (e.g. the last day fetched from hf-daily); JSON-serializable.
    cursor: dict[str, Any] = field(default_factory=dict)


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
    status: DigestStatus
    channel: str = ""
    entry_ids: tuple[str, ...] = ()
    attempts: int = 0
    created_at: datetime | None = None
    sent_at: datetime | None = None
    receipt: str = ""
    reason: str = ""


# --- delivery: statuses, and what the ledger and the senders hand back ------------------------
class DigestStatus(StrEnum):
    """A digest's state in the ledger (the `digests.status` column holds these very strings)."""

    PENDING = "pending"  # claimed, not confirmed yet: on its way, or to be tried again
    SENT = "sent"
    FAILED = "failed"  # refused for good; its entries are free for a later digest
    EMPTY = "empty"  # nothing new at that slot: the slot is used up, nothing is sent


class OutcomeStatus(StrEnum):
    """What became of one subscriber in a run: its digest's state, or why none was tried."""

    SENT = "sent"
    EMPTY = "empty"
    FAILED = "failed"
    PENDING = "pending"
    NOT_DUE = "not-due"  # no slot of its schedule has come since its last digest
    SKIPPED = "skipped"  # another thread, process or run has this digest


@dataclass(frozen=True, slots=True)
class Claim:
    """A digest to claim in the ledger: for (subscriber, slot), these items over this channel."""

    subscriber_id: str
    slot: datetime
    items: Sequence[DigestItem]
    channel: str
    more: int = 0  # selected entries left out by max_items


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a claim took: the digest's id and its items (those another digest took meanwhile dropped)."""

    digest_id: str
    items: tuple[DigestItem, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one subscriber in a run."""

    subscriber: str
    status: OutcomeStatus
    entries: int = 0
    destination: str = ""
    digest_id: str = ""
    reason: str = ""
    channel: str = ""  # the channel it went (or was to go) through: "outbox" is no one
