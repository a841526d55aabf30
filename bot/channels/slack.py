"""Slack: chat.postMessage with a bot token (long digests threaded), or an incoming webhook."""

from __future__ import annotations

import json
import logging
import re
from typing import Any, ClassVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient

from ..config import Settings
from ..errors import PermanentSendError, SendError, TransientSendError
from ..masking import mask_secrets
from ..models import Digest, Receipt, Subscriber
from ..render import SLACK_MAX_BLOCKS, SLACK_MESSAGE_CHARS, slack_messages
from ..retry_after import header_seconds
from ._registry import Channel, Field, Limits, Rate, register

log = logging.getLogger(__name__)

CHANNEL_INTERVAL = 1.0  # seconds between messages to one channel (Slack allows about 1/s)
TIMEOUT = 30  # seconds per HTTP request
EVENT_TYPE = "digestbot_digest"  # the message metadata event type that carries the digest id
RETRYABLE = {
    "ratelimited",
    "rate_limited",
    "fatal_error",
    "internal_error",
    "service_unavailable",
    "request_timeout",
}
BLOCK_ERRORS = {"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long"}
FIXES = {
    "channel_not_found": "check slack_channel in the subscription file, and invite the bot to that channel (/invite @yourbot)",
    "not_in_channel": "invite the bot to the channel (/invite @yourbot in that channel)",
    "is_archived": "the channel is archived; unarchive it or set another slack_channel",
    "invalid_auth": "check SLACK_BOT_TOKEN (a bot token starting xoxb-)",
    "not_authed": "set SLACK_BOT_TOKEN",
    "token_revoked": "make a new bot token and set SLACK_BOT_TOKEN",
    "account_inactive": "make a new bot token and set SLACK_BOT_TOKEN",
    "missing_scope": "give the Slack app the chat:write scope (and channels:history to check deliveries), then reinstall it",
    "restricted_action": "let the bot post in that channel (channel posting permissions)",
}
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]+$")  # channel names are lower case; ids are not
# A webhook's variable: only these names, so a subscriber file cannot have digestbot send (and
# echo) another variable, such as DIGESTBOT_SMTP_PASSWORD, as a webhook URL.
WEBHOOK_ENV_PREFIX = "SLACK_WEBHOOK_"
_ENV_NAME = re.compile(rf"{WEBHOOK_ENV_PREFIX}[A-Za-z0-9_]+")


def webhook_env_name(name: str) -> bool:
    """Whether `name` may hold a subscriber's webhook URL (SLACK_WEBHOOK_…)."""
    return bool(_ENV_NAME.fullmatch(name))


class _AnyServerError(ServerErrorRetryHandler):
    """Retry on any 5xx, not only 500 and 503."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code >= 500


def retry_handlers() -> list[RetryHandler]:
    """slack-sdk's retries inside one send: 429 waits Retry-After; 5xx and lost connections back off."""
    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=3),
        _AnyServerError(max_retry_count=2),
    ]


def metadata(digest: Digest, part: int = 1, parts: int = 1) -> dict[str, Any]:
    """The message metadata that carries the digest id (found again by `already_delivered`)."""
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {"digest_id": digest.id, "part": part, "parts": parts},
    }


def _plain(message: dict[str, Any]) -> str:
    """A text-only form of a message, for when Slack refuses its blocks."""
    parts = [b["text"]["text"] for b in message["blocks"] if b["type"] in ("header", "section")]
    return "\n\n".join(parts)[:3900]


@register("slack")
class Slack(Channel):
    """Posts digests to Slack with Block Kit; the digest id rides in the message metadata."""

    fields = (
        Field("slack_channel", 'slack_channel = "#…"'),
        Field(
            "slack_webhook_env",
            'slack_webhook_env = "VAR"',
            webhook_env_name,
            f"an environment variable named {WEBHOOK_ENV_PREFIX}…",
            'slack_webhook_env = "SLACK_WEBHOOK_ALICE"',
        ),
    )
    destination = "a Slack destination"
    rate_limit = Rate(
        per_second=1.0 / CHANNEL_INTERVAL, per_destination=True
    )  # one bucket per Slack channel
    limits = Limits(max_blocks=SLACK_MAX_BLOCKS, max_chars=SLACK_MESSAGE_CHARS)
    settings_table = "slack"
    settings_keys: ClassVar[dict[str, str]] = {"api_url": "slack_api_url"}

    @classmethod
    def ready(cls, subscriber: Subscriber, settings: Settings) -> bool:
        """A webhook whose variable is set, or a channel with SLACK_BOT_TOKEN."""
        env = subscriber.slack_webhook_env
        return bool(env and webhook_env_name(env) and settings.environ.get(env)) or bool(
            subscriber.slack_channel and settings.slack_token
        )

    @classmethod
    def missing(cls, subscriber: Subscriber, settings: Settings) -> str:
        """The webhook's variable or SLACK_BOT_TOKEN, when it is not set."""
        if cls.ready(subscriber, settings):
            return ""
        env = subscriber.slack_webhook_env
        if env:
            return f"Slack needs the variable {env} (slack_webhook_env), which is not set"
        return "Slack needs SLACK_BOT_TOKEN, which is not set"

    @classmethod
    def render(cls, digest: Digest, settings: Settings) -> list[dict[str, Any]]:
        """The digest as Slack messages (the first, then its thread)."""
        return slack_messages(digest, settings)

    @classmethod
    def outbox_bytes(cls, digest: Digest, settings: Settings) -> bytes:
        """What chat.postMessage would get: the first message, then the replies in its thread."""
        messages = cls.render(digest, settings)
        sub = digest.subscriber
        payload = {
            "channel": sub.slack_channel or f"${sub.slack_webhook_env}",
            **messages[0],
            "metadata": metadata(digest, 1, len(messages)),
            "thread": [
                {**m, "metadata": metadata(digest, i, len(messages))}
                for i, m in enumerate(messages[1:], 2)
            ],
        }
        return json.dumps(payload, ensure_ascii=False, indent=2).encode()

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.client = WebClient(
            token=settings.slack_token or None,
            base_url=settings.slack_api_url,
            timeout=TIMEOUT,
            retry_handlers=retry_handlers(),
        )
        self._ids: dict[str, str] = {}  # channel name → id
        self._progress: dict[
            str, tuple[str, str, int]
        ] = {}  # digest id → (channel id, first ts, parts sent)

    def _webhook(self, digest: Digest) -> str:
        env = digest.subscriber.slack_webhook_env
        return self.settings.environ.get(env, "") if env and webhook_env_name(env) else ""

    def send(self, digest: Digest) -> Receipt:
        """Post the digest: the first message, then the rest in its thread, one per second at most."""
        messages = self.render(digest, self.settings)
        if self._webhook(digest):
            return self._send_webhook(digest, messages)
        sub = digest.subscriber
        channel, first_ts, done = self._progress.get(digest.id, (sub.slack_channel, "", 0))
        for i, message in enumerate(messages[done:], done):
            self.wait_turn(digest)
            resp = self._post(channel, message, metadata(digest, i + 1, len(messages)), first_ts)
            if i == 0:
                channel, first_ts = str(resp.get("channel") or channel), str(resp.get("ts", ""))
            self._progress[digest.id] = (channel, first_ts, i + 1)  # a retry goes on from here
        self._progress.pop(digest.id, None)
        return Receipt("slack", sub.slack_channel, first_ts)

    def _post(
        self, channel: str, message: dict[str, Any], meta: dict[str, Any], thread_ts: str
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        try:
            try:
                resp = self.client.chat_postMessage(
                    channel=channel,
                    text=message["text"],
                    blocks=message["blocks"],
                    metadata=meta,
                    unfurl_links=False,
                    **extra,
                )
            except SlackApiError as e:
                if _code(e) not in BLOCK_ERRORS:
                    raise
                log.warning(
                    "Slack refused the blocks (%s %s); posting plain text instead",
                    _code(e),
                    _details(e),
                )
                resp = self.client.chat_postMessage(
                    channel=channel,
                    text=_plain(message),
                    metadata=meta,
                    unfurl_links=False,
                    **extra,
                )
        except SlackApiError as e:
            raise _classify(e, channel) from e
        except OSError as e:
            raise TransientSendError(f"Slack unreachable ({e}); will retry") from e
        return dict(resp.data) if isinstance(resp.data, dict) else {}

    def _send_webhook(self, digest: Digest, messages: list[dict[str, Any]]) -> Receipt:
        env = digest.subscriber.slack_webhook_env
        url = self._webhook(digest)
        if not url.startswith(("https://", "http://")):
            raise PermanentSendError(
                f"${env} does not hold a webhook URL; set it to the URL Slack gives "
                "(https://hooks.slack.com/services/…, Slack app → Incoming Webhooks)"
            )
        hook = WebhookClient(url, timeout=TIMEOUT, retry_handlers=retry_handlers())
        done = self._progress.get(digest.id, ("", "", 0))[2]
        for i, message in enumerate(messages[done:], done):
            self.wait_turn(digest)
            try:
                resp = hook.send(
                    text=message["text"],
                    blocks=message["blocks"],
                    metadata=metadata(digest, i + 1, len(messages)),
                )
            except OSError as e:  # the error may quote the URL: never echo it
                reason = mask_secrets(str(e).replace(url, f"${env}"))
                raise TransientSendError(
                    f"the Slack webhook in ${env} is unreachable ({reason}); will retry"
                ) from e
            # A webhook answers errors without raising: only 200 with "ok" is a success.
            if resp.status_code != 200 or resp.body.strip() != "ok":
                body = mask_secrets(resp.body.strip()[:200].replace(url, f"${env}"))
                if resp.status_code == 429 or resp.status_code >= 500:
                    raise TransientSendError(
                        f"the Slack webhook in ${env} answered {resp.status_code} {body}; will retry"
                    )
                raise PermanentSendError(
                    f"the Slack webhook in ${env} answered {resp.status_code} {body}; "
                    f"check the webhook URL in ${env} (Slack app → Incoming Webhooks)"
                )
            self._progress[digest.id] = ("", "", i + 1)
        self._progress.pop(digest.id, None)
        return Receipt("slack", f"${env}", "ok")

    def channel_id(self, channel: str) -> str:
        """The id of a channel given by id or by name (`#papers`), looked up once."""
        name = channel.lstrip("#")
        if _CHANNEL_ID.match(name):
            return name
        if name not in self._ids:
            cursor = None
            while True:
                resp = self.client.conversations_list(
                    types="public_channel,private_channel",
                    limit=1000,
                    exclude_archived=True,
                    cursor=cursor,
                )
                channels: list[dict[str, Any]] = resp.get("channels", [])
                for c in channels:
                    self._ids[c["name"]] = c["id"]
                cursor = (resp.get("response_metadata") or {}).get("next_cursor")
                if name in self._ids or not cursor:
                    break
        if name not in self._ids:
            raise PermanentSendError(
                f"no Slack channel named {channel!r} is visible to the bot; {FIXES['channel_not_found']}"
            )
        return self._ids[name]

    def already_delivered(self, digest: Digest) -> bool:
        """Whether the channel's recent history holds a message carrying this digest's id."""
        if self._webhook(digest):
            return False  # a webhook cannot read the channel back
        channel = digest.subscriber.slack_channel
        try:
            cid = self.channel_id(channel)
            cursor = None
            oldest = f"{digest.slot.timestamp() - 3600:.6f}"  # a digest is posted after its slot
            while True:
                resp = self.client.conversations_history(
                    channel=cid, oldest=oldest, limit=200, include_all_metadata=True, cursor=cursor
                )
                messages: list[dict[str, Any]] = resp.get("messages", [])
                for m in messages:
                    meta = m.get("metadata") or {}
                    if (
                        meta.get("event_type") == EVENT_TYPE
                        and (meta.get("event_payload") or {}).get("digest_id") == digest.id
                    ):
                        return True
                cursor = (resp.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    return False
        except SlackApiError as e:
            raise _classify(e, channel) from e
        except OSError as e:
            raise TransientSendError(f"Slack unreachable ({e}); will retry") from e

    def close(self) -> None:
        """Forget half-sent threads; the HTTP client holds no connection open."""
        self._progress.clear()


def _code(e: SlackApiError) -> str:
    return str(e.response.get("error", "")) if e.response is not None else ""


def _details(e: SlackApiError) -> str:
    if e.response is None:
        return ""
    errors = (
        e.response.get("errors")
        or (e.response.get("response_metadata") or {}).get("messages")
        or []
    )
    return "; ".join(map(str, errors))[:500]


def _classify(e: SlackApiError, channel: str) -> SendError:
    """A Slack API error as a transient or permanent failure whose message says the fix."""
    code = _code(e)
    status = e.response.status_code if e.response is not None else 0
    if status == 429 or status >= 500 or code in RETRYABLE:
        # The pipeline waits at least this long before its next try (Slack's Retry-After).
        return TransientSendError(
            f"Slack answered {status} {code or '(no error code)'}; will retry",
            retry_after=header_seconds(e.response.headers if e.response is not None else {}),
        )
    fix = FIXES.get(code, "see https://api.slack.com/methods/chat.postMessage#errors")
    detail = _details(e)
    return PermanentSendError(
        f"Slack refused the post to {channel}: {code or status}{f' ({detail})' if detail else ''}; {fix}"
    )
