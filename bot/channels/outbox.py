"""The outbox: each digest written as a file — what its channel would send (`.eml` for email,
Slack's JSON), as that channel's `outbox_bytes` says — instead of being sent to anyone.

A channel the config chooses explicitly (`chosen`): `outbox_dir` written in the config file.
DIGESTBOT_OUTBOX only says where the folder is (deploy recipes set it to their state folder);
it chooses nothing. Without the choice, a digest whose channel is not configured waits, pending.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Settings
from ..models import Digest, Receipt
from ._registry import Channel, channel_of, register

DEFAULT_DIR = Settings().outbox_dir


def chosen(settings: Settings) -> bool:
    """Whether the config chooses the outbox for digests whose channel is not configured.

    Settings read from a file: `outbox_dir` is written in it (not the DIGESTBOT_OUTBOX
    variable, which only moves the folder). Settings made in code, with no file: an
    `outbox_dir` other than the default was given.
    """
    if settings.config_path is None:
        return settings.outbox_chosen or settings.outbox_dir != DEFAULT_DIR
    return settings.outbox_chosen


@register("outbox")
class Outbox(Channel):
    """Writes digests under `outbox/<subscriber>/<digest id>.eml|.json`; no account, no network."""

    def _channel(self, digest: Digest) -> type[Channel]:
        """The channel the outbox stands in for (its subscriber's)."""
        return channel_of(digest.subscriber) or Channel

    def _path(self, digest: Digest) -> Path:
        folder = self.settings.resolve(self.settings.outbox_dir) / digest.subscriber.id
        return folder / f"{digest.id}.{self._channel(digest).outbox_suffix}"

    def send(self, digest: Digest) -> Receipt:
        """Write the digest's file atomically."""
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self._channel(digest).outbox_bytes(digest, self.settings)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a crash leaves the old file or the new one, never half
        return Receipt("outbox", str(path), str(path))

    def already_delivered(self, digest: Digest) -> bool:
        """Whether the digest's file exists."""
        return self._path(digest).exists()
