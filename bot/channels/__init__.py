"""Channels: one module per way of delivering a digest, and a small registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from ..config import Settings
from ..models import Digest, Receipt, Subscriber


class Channel(ABC):
    """Delivers rendered digests. Raise `TransientSendError` or `PermanentSendError` on failure."""

    name: ClassVar[str] = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def send(self, digest: Digest) -> Receipt:
        """Deliver one digest; its id goes into the Message-ID or the Slack message metadata."""

    def prepare(self, digest: Digest) -> None:
        """Optionally render a digest ahead of `send` (while another is on the wire); errors show in `send`."""

    def already_delivered(self, digest: Digest) -> bool:
        """After a crash: whether this digest reached its destination already (default: unknown, no)."""
        return False

    def close(self) -> None:
        """Release connections."""


CHANNELS: dict[str, type[Channel]] = {}


def register(name: str) -> Callable[[type[Channel]], type[Channel]]:
    """Class decorator: make a channel available by name."""

    def add(cls: type[Channel]) -> type[Channel]:
        if name in CHANNELS:
            raise ValueError(f"channel {name!r} registered twice")
        cls.name = name
        CHANNELS[name] = cls
        return cls

    return add


def channel_for(subscriber: Subscriber, settings: Settings) -> str:
    """The channel that serves this subscriber under these settings: the real one, or the outbox."""
    if subscriber.email:
        return "email" if settings.smtp_url else "outbox"
    if subscriber.slack_webhook_env and settings.environ.get(subscriber.slack_webhook_env):
        return "slack"
    if subscriber.slack_channel and settings.slack_token:
        return "slack"
    return "outbox"


def _load_builtin() -> None:
    from . import email, outbox, slack  # noqa: F401  (registration side effect)


_load_builtin()
