"""The outbox: each digest written as a file — the `.eml` that SMTP would carry, or Slack's JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..models import Digest, Receipt
from ..render import slack_messages
from . import Channel, register
from .email import wire_message
from .slack import metadata


@register("outbox")
class Outbox(Channel):
    """Writes digests under `outbox/<subscriber>/<digest id>.eml|.json`; no account, no network."""

    def _path(self, digest: Digest) -> Path:
        folder = self.settings.resolve(self.settings.outbox_dir) / digest.subscriber.id
        return folder / f"{digest.id}.{'eml' if digest.subscriber.email else 'json'}"

    def send(self, digest: Digest) -> Receipt:
        """Write the digest's file atomically."""
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        if digest.subscriber.email:
            data = wire_message(digest, self.settings).data
        else:
            messages = slack_messages(digest, self.settings)
            # What chat.postMessage would get: the first message, then the replies in its thread.
            payload = {"channel": digest.subscriber.slack_channel or f"${digest.subscriber.slack_webhook_env}",
                       **messages[0], "metadata": metadata(digest, 1, len(messages)),
                       "thread": [{**m, "metadata": metadata(digest, i, len(messages))}
                                  for i, m in enumerate(messages[1:], 2)]}
            data = json.dumps(payload, ensure_ascii=False, indent=2).encode()
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a crash leaves the old file or the new one, never half
        return Receipt("outbox", str(path), str(path))

    def already_delivered(self, digest: Digest) -> bool:
        """Whether the digest's file exists."""
        return self._path(digest).exists()
