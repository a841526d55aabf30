"""Slack: chat.postMessage with a bot token, or an incoming webhook."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from ..errors import PermanentSendError, TransientSendError
from ..models import Digest, Receipt
from ..render import render_slack
from . import Channel, register

_FIXES = {
    "channel_not_found": "check slack_channel, and invite the bot to that channel",
    "not_in_channel": "invite the bot to the channel (/invite @digestbot)",
    "invalid_auth": "check SLACK_BOT_TOKEN",
    "not_authed": "set SLACK_BOT_TOKEN",
    "token_revoked": "make a new token and set SLACK_BOT_TOKEN",
}


@register("slack")
class Slack(Channel):
    """Posts digests to Slack with Block Kit; the digest id rides in the message metadata."""

    def send(self, digest: Digest) -> Receipt:
        payload = render_slack(digest, self.settings)
        sub = digest.subscriber
        metadata = {"event_type": "digestbot_digest", "event_payload": {"digest_id": digest.id}}
        if sub.slack_webhook_env and self.settings.environ.get(sub.slack_webhook_env):
            hook = WebhookClient(self.settings.environ[sub.slack_webhook_env], timeout=30)
            try:
                resp = hook.send(text=payload["text"], blocks=payload["blocks"], metadata=metadata)
            except OSError as e:
                raise TransientSendError(f"Slack webhook unreachable ({e}); will retry") from e
            if resp.status_code == 200 and resp.body.strip() in ("ok", ""):
                return Receipt("slack", f"${sub.slack_webhook_env}", "ok")
            if resp.status_code == 429 or resp.status_code >= 500:
                raise TransientSendError(f"Slack webhook answered {resp.status_code}; will retry")
            raise PermanentSendError(f"Slack webhook answered {resp.status_code} {resp.body[:200]}; check the URL in ${sub.slack_webhook_env}")
        client = WebClient(token=self.settings.slack_token, base_url=self.settings.slack_api_url, timeout=30)
        try:
            resp = client.chat_postMessage(channel=sub.slack_channel, text=payload["text"], blocks=payload["blocks"], metadata=metadata)
        except SlackApiError as e:
            code = e.response.get("error", "") if e.response is not None else ""
            status = e.response.status_code if e.response is not None else 0
            if status == 429 or status >= 500 or code in ("ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"):
                err = TransientSendError(f"Slack answered {status} {code}; will retry")
                # the pipeline waits at least this long before the next try (Slack's Retry-After)
                err.retry_after = _retry_after(e.response.headers if e.response is not None else {})  # type: ignore[attr-defined]
                raise err from e
            raise PermanentSendError(f"Slack refused the post to {sub.slack_channel}: {code}; {_FIXES.get(code, 'see the Slack API docs for this error')}") from e
        except OSError as e:
            raise TransientSendError(f"Slack unreachable ({e}); will retry") from e
        return Receipt("slack", sub.slack_channel, str(resp.get("ts", "")))

    def already_delivered(self, digest: Digest) -> bool:
        """Whether the channel's recent history holds a message whose metadata carries this digest id.

        (Minimal version from the scheduler branch; the channels branch's may replace it.)
        """
        sub = digest.subscriber
        if not sub.slack_channel or not self.settings.slack_token:
            return False  # a webhook cannot read history: say unknown
        client = WebClient(token=self.settings.slack_token, base_url=self.settings.slack_api_url, timeout=30)
        try:
            resp = client.conversations_history(channel=sub.slack_channel, limit=100, include_all_metadata=True)
        except (SlackApiError, OSError) as e:
            raise TransientSendError(f"cannot read the history of {sub.slack_channel} ({e}); will retry") from e
        messages: list[dict[str, Any]] = resp.get("messages") or []
        for m in messages:
            meta = m.get("metadata") or {}
            if meta.get("event_type") == "digestbot_digest" and (meta.get("event_payload") or {}).get("digest_id") == digest.id:
                return True
        return False


def _retry_after(headers: Any) -> float:
    """Seconds from a Retry-After header (0 when absent or unreadable)."""
    try:
        value = headers.get("Retry-After") or headers.get("retry-after") or 0
        return max(0.0, float(value[0] if isinstance(value, list) else value))
    except (TypeError, ValueError, AttributeError):
        return 0.0
