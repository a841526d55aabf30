"""The outbox: each digest written as a file — the `.eml` that SMTP would carry, or Slack's JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..models import Digest, Receipt
from ..render import render_slack
from . import Channel, register
from .email import build_message


@register("outbox")
class Outbox(Channel):
    """Writes digests under `outbox/<subscriber>/<digest id>.eml|.json`; no account, no network."""

    def _path(self, digest: Digest) -> Path:
        folder = self.settings.resolve(self.settings.outbox_dir) / digest.subscriber.id
        return folder / f"{digest.id}.{'eml' if digest.subscriber.email else 'json'}"

    def send(self, digest: Digest) -> Receipt:
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        if digest.subscriber.email:
            data = bytes(build_message(digest, self.settings))
        else:
            payload = {"channel": digest.subscriber.slack_channel or digest.subscriber.slack_webhook_env,
                       **render_slack(digest, self.settings),
                       "metadata": {"event_type": "digestbot_digest", "event_payload": {"digest_id": digest.id}}}
            data = json.dumps(payload, ensure_ascii=False, indent=2).encode()
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a crash leaves the old file or the new one, never half
        return Receipt("outbox", str(path), str(path))

    def already_delivered(self, digest: Digest) -> bool:
        return self._path(digest).exists()
