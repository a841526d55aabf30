"""Slack: chat.postMessage with a bot token (long digests threaded) to a channel or, for a member
who subscribed with /papers, to their DM with the app (conversations.open, the workspace's own
token); or an incoming webhook."""

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
from ..errors import ChannelDownError, PermanentSendError, TransientSendError
from ..masking import mask_secrets
from ..models import Digest, Receipt, Subscriber
from ..render import (
    SLACK_FALLBACK_CHARS,
    SLACK_MAX_BLOCKS,
    SLACK_MESSAGE_CHARS,
    cap_mrkdwn,
    slack_escape,
    slack_messages,
)
from ..slack import installs
from ..slack.members import USER_FIELD, member_key, user_field_ok
from ..store import Store, open_store
from ._registry import Channel, Field, Limits, Rate, register
from .slack_errors import BLOCK_ERRORS, DM_FIXES, FIXES, _classify, _code, _details

log = logging.getLogger(__name__)

CHANNEL_INTERVAL = 1.0  # seconds between messages to one channel (Slack allows about 1/s)
TIMEOUT = 30  # seconds per HTTP request
EVENT_TYPE = "digestbot_digest"  # the message metadata event type that carries the digest id
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
    """A text-only form of a message, for when Slack refuses its blocks: mrkdwn, so the header
    (plain text, a feed's title in it) is escaped, and cut where no link or entity breaks."""
    parts = [
        slack_escape(b["text"]["text"]) if b["type"] == "header" else b["text"]["text"]
        for b in message["blocks"]
        if b["type"] in ("header", "section")
    ]
    return cap_mrkdwn("\n\n".join(parts), SLACK_FALLBACK_CHARS)


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
        Field(
            USER_FIELD,
            'slack_user = "T…:U…"',
            user_field_ok,
            "a Slack member as <team id>:<user id>",
            'slack_user = "T0123ABCD:U0456EFGH"',
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
        """A webhook whose variable is set, or a channel with SLACK_BOT_TOKEN, or a member with
        SLACK_BOT_TOKEN or installs (SLACK_CLIENT_ID; their workspace's token is found when sending)."""
        member = subscriber.contact.get(USER_FIELD, "")
        if member and not subscriber.slack_channel and not subscriber.slack_webhook_env:
            return bool(
                member_key(member) and (settings.slack_token or installs.client_id(settings))
            )
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
        if subscriber.contact.get(USER_FIELD) and not subscriber.slack_channel:
            return "Slack direct messages need SLACK_BOT_TOKEN, or SLACK_CLIENT_ID and the app installed"
        return "Slack needs SLACK_BOT_TOKEN, which is not set"

    @classmethod
    def down_scope(cls, subscriber: Subscriber, settings: Settings) -> str:
        """The token a refused token takes down: a webhook's, the member's workspace's, or
        SLACK_BOT_TOKEN (channel posts); digests of other workspaces and webhooks still go."""
        env = subscriber.slack_webhook_env
        if env and webhook_env_name(env) and settings.environ.get(env):
            return f"${env}"
        member = subscriber.contact.get(USER_FIELD, "")
        key = member_key(member) if member and not (subscriber.slack_channel or env) else None
        return f"the workspace {key[0]}" if key else "SLACK_BOT_TOKEN"

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
            "channel": sub.slack_channel
            or (f"${sub.slack_webhook_env}" if sub.slack_webhook_env else "")
            or f"DM with {sub.contact.get(USER_FIELD, '')}",
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
        self._store: Store | None = None  # opened for the first member's DM (their team's token)
        self._clients: dict[str, WebClient] = {}  # a workspace's token → its client
        self._tokens: dict[str, str] = {}  # team id → its bot token (until `close`)
        # digest id → (channel, first message's ts, the parts posted): where a retry goes on,
        # in this run, or after a restart once `already_delivered` found a thread cut short.
        self._progress: dict[str, tuple[str, str, frozenset[int]]] = {}

    def _webhook(self, digest: Digest) -> str:
        env = digest.subscriber.slack_webhook_env
        return self.settings.environ.get(env, "") if env and webhook_env_name(env) else ""

    def send(self, digest: Digest) -> Receipt:
        """Post the digest: the first message, then the rest in its thread, one per second at most."""
        messages = self.render(digest, self.settings)
        if self._webhook(digest):
            return self._send_webhook(digest, messages)
        sub = digest.subscriber
        api, fixes, token = self._api(digest)
        try:
            if digest.id in self._progress:
                channel, first_ts, posted = self._progress[digest.id]
            else:
                channel, first_ts = self._destination(digest, api, fixes, token), ""
                posted = frozenset()
            for part, message in enumerate(messages, 1):
                if part in posted:
                    continue
                self.wait_turn(digest)
                meta = metadata(digest, part, len(messages))
                resp = self._post(channel, message, meta, first_ts, api, fixes, token)
                if part == 1:
                    channel, first_ts = str(resp.get("channel") or channel), str(resp.get("ts", ""))
                posted |= {part}
                self._progress[digest.id] = (channel, first_ts, posted)  # a retry goes on from here
        except ChannelDownError:
            self._forget(digest)
            raise
        self._progress.pop(digest.id, None)
        return Receipt("slack", sub.slack_channel or sub.address, first_ts)

    # --- a member's DM: their workspace's token, conversations.open --------------------------
    def _member(self, digest: Digest) -> tuple[str, str] | None:
        """(team, user) when the digest goes to a member's DM, else None (a channel)."""
        sub = digest.subscriber
        if sub.slack_channel or sub.slack_webhook_env:
            return None
        return member_key(sub.contact.get(USER_FIELD, ""))

    def _api(self, digest: Digest) -> tuple[WebClient, dict[str, str], str]:
        """The client for this digest (a member's workspace token, else SLACK_BOT_TOKEN's), the
        fixes its errors get, and which token it is (for messages; never the token itself)."""
        member = self._member(digest)
        if member is None:
            return self.client, FIXES, "SLACK_BOT_TOKEN"
        if self._store is None:
            self._store = open_store(self.settings)
        base = self.settings.base_url.rstrip("/")
        fixes = {**FIXES, **{k: v.format(base=base) for k, v in DM_FIXES.items()}}
        token = self._tokens.get(member[0]) or installs.team_token(
            self.settings, self._store, member[0]
        )  # looked up once per workspace while the channel is open, not once per member
        if token:
            self._tokens[member[0]] = token
        if not token:
            raise PermanentSendError(
                f"no Slack bot token for the workspace {member[0]}: {fixes['not_authed']}"
            )
        if token not in self._clients:
            self._clients[token] = WebClient(
                token=token,
                base_url=self.settings.slack_api_url,
                timeout=TIMEOUT,
                retry_handlers=retry_handlers(),
            )
        return self._clients[token], fixes, f"the bot token of the workspace {member[0]}"

    def _forget(self, digest: Digest) -> None:
        """Slack refused the token of this digest's workspace: look it up again next time (in a
        long-lived worker, a reinstall's new token is then used once the channel is tried again)."""
        member = self._member(digest)
        if member is not None:
            token = self._tokens.pop(member[0], "")
            self._clients.pop(token, None)

    def _destination(
        self, digest: Digest, api: WebClient, fixes: dict[str, str], token: str
    ) -> str:
        """The channel to post to: the subscriber's channel, or the member's DM (opened)."""
        member = self._member(digest)
        if member is None:
            return digest.subscriber.slack_channel
        where = f"the DM with {member[1]} in {member[0]}"
        try:
            resp = api.conversations_open(users=member[1])
        except SlackApiError as e:
            raise _classify(e, where, fixes, "conversations.open", token) from e
        except OSError as e:
            raise TransientSendError(f"Slack unreachable ({e}); will retry") from e
        channel = (resp.get("channel") or {}).get("id")
        if not channel:
            raise TransientSendError("conversations.open answered without a channel; will retry")
        return str(channel)

    def _post(
        self,
        channel: str,
        message: dict[str, Any],
        meta: dict[str, Any],
        thread_ts: str,
        api: WebClient,
        fixes: dict[str, str],
        token: str,
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        try:
            try:
                resp = api.chat_postMessage(
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
                resp = api.chat_postMessage(
                    channel=channel,
                    text=_plain(message),
                    metadata=meta,
                    unfurl_links=False,
                    **extra,
                )
        except SlackApiError as e:
            raise _classify(e, channel, fixes, token=token) from e
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
        posted = self._progress.get(digest.id, ("", "", frozenset[int]()))[2]
        for i, message in enumerate(messages):
            if i + 1 in posted:
                continue
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
            posted |= {i + 1}
            self._progress[digest.id] = ("", "", posted)
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
        """Whether every part of this digest is in Slack: its first message in the channel's
        recent history (the digest id in its metadata), the others in that message's thread.

        A thread cut short (a crash or failure between parts) is not delivered: `send` then
        posts only its missing parts, in that thread."""
        if self._webhook(digest):
            return False  # a webhook cannot read the channel back
        channel = digest.subscriber.slack_channel
        api, fixes, token = self._api(digest)
        try:
            cid = (
                self._destination(digest, api, fixes, token)
                if self._member(digest)
                else self.channel_id(channel)
            )
            best: tuple[str, frozenset[int]] | None = None
            for ts, parts in self._first_parts(api, cid, digest):
                posted = frozenset({1})
                if parts > 1:
                    posted |= self._thread_parts(api, cid, ts, digest)
                if posted >= set(range(1, parts + 1)):
                    return True
                if best is None or len(posted) > len(best[1]):
                    best = (ts, posted)
        except ChannelDownError:  # conversations.open refused the member's workspace token
            self._forget(digest)
            raise
        except SlackApiError as e:
            refused = _classify(e, channel or digest.subscriber.address, fixes, token=token)
            if isinstance(refused, ChannelDownError):
                self._forget(digest)
            raise refused from e
        except OSError as e:
            raise TransientSendError(f"Slack unreachable ({e}); will retry") from e
        if best is not None:
            log.info(
                "digest %s: parts %s are in Slack (thread %s); posting the others in that thread",
                digest.id,
                ", ".join(map(str, sorted(best[1]))),
                best[0],
            )
            self._progress[digest.id] = (cid, best[0], best[1])
        return False

    @staticmethod
    def _ours(message: dict[str, Any], digest: Digest) -> int:
        """The part number of a message carrying this digest's id (0: not one of ours)."""
        meta = message.get("metadata") or {}
        payload = meta.get("event_payload") or {}
        if meta.get("event_type") != EVENT_TYPE or payload.get("digest_id") != digest.id:
            return 0
        part = payload.get("part", 1)
        return part if isinstance(part, int) and part > 0 else 0

    def _first_parts(self, api: WebClient, cid: str, digest: Digest) -> list[tuple[str, int]]:
        """(ts, parts in all) of each top-level message of the channel's recent history that
        carries this digest's id (its part 1; more than one if a post was repeated)."""
        found = []
        cursor = None
        oldest = f"{digest.slot.timestamp() - 3600:.6f}"  # a digest is posted after its slot
        while True:
            resp = api.conversations_history(
                channel=cid, oldest=oldest, limit=200, include_all_metadata=True, cursor=cursor
            )
            messages: list[dict[str, Any]] = resp.get("messages", [])
            for m in messages:
                if self._ours(m, digest) == 1:
                    parts = (m["metadata"].get("event_payload") or {}).get("parts", 1)
                    found.append((str(m.get("ts", "")), parts if isinstance(parts, int) else 1))
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return found

    def _thread_parts(self, api: WebClient, cid: str, ts: str, digest: Digest) -> frozenset[int]:
        """The part numbers of this digest among the replies in the thread under `ts`
        (conversations.replies, every page; people's own replies there are not counted)."""
        parts: set[int] = set()
        cursor = None
        while True:
            resp = api.conversations_replies(
                channel=cid, ts=ts, limit=200, include_all_metadata=True, cursor=cursor
            )
            messages: list[dict[str, Any]] = resp.get("messages", [])
            for m in messages:
                if m.get("ts") != ts:  # the first message comes back too, on the first page
                    parts.add(self._ours(m, digest))
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return frozenset(parts - {0})

    def close(self) -> None:
        """Forget half-sent threads (the next run finds them in Slack again); close the store
        opened for members' tokens."""
        self._progress.clear()
        self._clients.clear()
        self._tokens.clear()
        if self._store is not None:
            self._store.close()
            self._store = None
