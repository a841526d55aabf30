"""What a channel is: a class that declares, as data, the subscriber fields it reads, its rate
and its limits; and the registry that the rest of digestbot reads those declarations from."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..config import Settings
from ..models import Digest, Receipt, Subscriber
from ..render import digest_data
from ._ratelimit import per_second, shared


@dataclass(frozen=True, slots=True)
class Field:
    """A key of a subscription file that names where a channel delivers (e.g. ``email``)."""

    name: str
    example: str  # what to write, in "no delivery address; give email = "…", …"
    check: Callable[[str], bool] | None = None  # None: any non-empty string
    what: str = ""  # what a value must be, in "… is not an email address"
    hint: str = ""  # a good line, in "; write e.g. email = "alice@example.org""

    def problem(self, value: str) -> str:
        """The problem with `value` (with its fix), or empty when it passes."""
        if self.check is None or self.check(value):
            return ""
        return f"{value!r} is not {self.what}; write e.g. {self.hint}"


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `per_second` messages a second (or the number in Settings' `setting`), for the
    whole channel or per destination (one Slack channel, one webhook)."""

    per_second: float = 0.0  # 0: no limit
    setting: str = ""  # a Settings attribute that overrides `per_second` (e.g. "smtp_rate")
    per_destination: bool = False

    def of(self, settings: Settings) -> float:
        """Messages per second under these settings."""
        return float(getattr(settings, self.setting)) if self.setting else self.per_second


@dataclass(frozen=True, slots=True)
class Limits:
    """What one message of the channel may hold (0: no limit)."""

    max_bytes: int = 0  # a whole message (the HTML part of an email)
    max_blocks: int = 0  # Slack blocks per message
    max_chars: int = 0  # characters per message


class Channel(ABC):
    """Delivers rendered digests. Raise `TransientSendError` or `PermanentSendError` on failure.

    The class data is what the rest of digestbot reads: `fields` (subscription file keys, and
    which subscribers the channel serves), `rate_limit` (the pool's shared limit too), `limits`,
    `settings_table` and `settings_keys` (its table in digestbot.toml: `settings_tables()`;
    config.py cannot import this package, which imports its `Settings`, so a test holds the two
    together), `outbox_suffix` and `render` (what the outbox writes while the channel is not
    configured).
    """

    name: ClassVar[str] = ""
    fields: ClassVar[tuple[Field, ...]] = ()
    destination: ClassVar[str] = ""  # in "give either an email address or a Slack destination"
    rate_limit: ClassVar[Rate] = Rate()
    limits: ClassVar[Limits] = Limits()
    settings_table: ClassVar[str] = ""  # its table in digestbot.toml, e.g. "smtp"
    settings_keys: ClassVar[dict[str, str]] = {}  # key in that table → Settings attribute
    outbox_suffix: ClassVar[str] = "json"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def ready(cls, subscriber: Subscriber, settings: Settings) -> bool:
        """Whether the settings let this channel reach the subscriber (else its digests wait, or
        go to the outbox when the config chooses it: `channel_for`)."""
        return True

    @classmethod
    def missing(cls, subscriber: Subscriber, settings: Settings) -> str:
        """What the settings lack for `ready` (the setting to give), or empty when ready."""
        return "" if cls.ready(subscriber, settings) else f"{cls.name} is not configured"

    @classmethod
    def render(cls, digest: Digest, settings: Settings) -> Any:
        """The digest as this channel sends it (default: the JSON-ready `render.digest_data`)."""
        return digest_data(digest, settings)

    @classmethod
    def outbox_bytes(cls, digest: Digest, settings: Settings) -> bytes:
        """What the outbox writes in this channel's stead (default: `render` as JSON)."""
        return json.dumps(cls.render(digest, settings), ensure_ascii=False, indent=2).encode()

    def wait_turn(self, digest: Digest) -> float:
        """Wait until `rate_limit` lets the next message go in this process (per destination when
        it says so); return the seconds waited. The pool adds the same limit across workers."""
        rate = self.rate_limit
        key = f"{self.name}:{digest.subscriber.address}" if rate.per_destination else self.name
        return shared(key, per_second(rate.of(self.settings))).wait()

    @classmethod
    def down_scope(cls, subscriber: Subscriber, settings: Settings) -> str:
        """What a `ChannelDownError` met sending to this subscriber takes down: "" the whole
        channel (the default: one server, one login), or the part of it the subscriber's digests
        share (Slack: one bot token), so digests sent another way still go."""
        return ""

    @abstractmethod
    def send(self, digest: Digest) -> Receipt:
        """Deliver one digest; its id goes into the Message-ID or the Slack message metadata."""

    def prepare(self, digest: Digest) -> None:
        """Optionally render a digest ahead of `send` (while another is on the wire).

        Errors show in `send`.
        """

    def already_delivered(self, digest: Digest) -> bool:
        """After a crash: whether this digest reached its destination (default: unknown, no)."""
        return False

    def close(self) -> None:
        """Release connections."""


CHANNELS: dict[str, type[Channel]] = {}


def register(name: str) -> Callable[[type[Channel]], type[Channel]]:
    """Class decorator: make a channel available by name."""

    def add(cls: type[Channel]) -> type[Channel]:
        if name in CHANNELS:
            raise ValueError(f"channel {name!r} registered twice")
        taken = {f.name for c in CHANNELS.values() for f in c.fields} & {f.name for f in cls.fields}
        if taken:
            raise ValueError(
                f"channel {name!r}: the subscriber field {min(taken)!r} belongs to another channel"
            )
        cls.name = name
        CHANNELS[name] = cls
        return cls

    return add


def field_value(subscriber: Subscriber, name: str) -> str:
    """A subscriber's value for a channel field: a built-in attribute, else from `contact`."""
    if name in Subscriber.__dataclass_fields__:
        value = getattr(subscriber, name)
        return value if isinstance(value, str) else ""
    return subscriber.contact.get(name, "")


def channel_of(subscriber: Subscriber) -> type[Channel] | None:
    """The channel whose fields the subscriber fills (the first registered), or None."""
    for cls in CHANNELS.values():
        if any(field_value(subscriber, f.name) for f in cls.fields):
            return cls
    return None
