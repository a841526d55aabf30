"""What Slack's Web API errors mean for a digest: transient (with Slack's Retry-After), the bot
token refused (`ChannelDownError`: every digest sent with that token waits for the fix), or
permanent for that one recipient, with the fix, for a channel or (other fixes) a member's DM."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

from ..errors import ChannelDownError, PermanentSendError, SendError, TransientSendError
from ..retry_after import header_seconds

RETRYABLE = {
    "ratelimited",
    "rate_limited",
    "fatal_error",
    "internal_error",
    "service_unavailable",
    "request_timeout",
}
# The bot token itself refused, whatever the recipient (Slack's common errors): no digest is to
# blame, and each post with that token would be refused alike until the token is mended.
#   invalid_auth      the token cannot be validated (wrong, or the request's IP is not allowed)
#   not_authed        no token was sent
#   token_revoked     the app was removed from the workspace, or the token revoked
#   token_expired     the token expired (token rotation is on for the app)
#   account_inactive  the bot token's user or workspace was deleted or deactivated
TOKEN_ERRORS = {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
BLOCK_ERRORS = {"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long"}
FIXES = {
    "channel_not_found": "check slack_channel in the subscription file, and invite the bot to that channel (/invite @yourbot)",
    "not_in_channel": "invite the bot to the channel (/invite @yourbot in that channel)",
    "is_archived": "the channel is archived; unarchive it or set another slack_channel",
    "invalid_auth": "check SLACK_BOT_TOKEN (a bot token starting xoxb-)",
    "not_authed": "set SLACK_BOT_TOKEN",
    "token_revoked": "the app was removed from the workspace or its token revoked; reinstall the Slack app and set SLACK_BOT_TOKEN to its new bot token",
    "token_expired": "the token expired (token rotation is on for the app, and digestbot does not refresh tokens); turn token rotation off, reinstall the Slack app and set SLACK_BOT_TOKEN to its new bot token",
    "account_inactive": "the token's workspace or bot user was deleted or deactivated; reinstall the Slack app and set SLACK_BOT_TOKEN to its new bot token",
    "missing_scope": "give the Slack app the chat:write scope (and channels:history to check deliveries), then reinstall it",
    "restricted_action": "let the bot post in that channel (channel posting permissions)",
}
# A member's DM: the same codes mean something else there (the token is the workspace's).
DM_FIXES = {
    "account_inactive": "the workspace's bot token belongs to a deactivated app or workspace; reinstall digestbot there ({base}/slack/install)",
    "invalid_auth": "the workspace's bot token no longer works; reinstall digestbot there ({base}/slack/install)",
    "token_revoked": "the workspace removed digestbot; reinstall it there ({base}/slack/install)",
    "token_expired": "the workspace's bot token expired (token rotation is on for the app, and digestbot does not refresh tokens); turn token rotation off and reinstall digestbot there ({base}/slack/install)",
    "not_authed": "no bot token for this workspace; install digestbot there ({base}/slack/install) or set SLACK_BOT_TOKEN",
    "user_not_found": "the member is no longer in the workspace (left or removed); nothing to fix unless they come back",
    "user_disabled": "the member's account is deactivated; nothing to fix unless it returns",
    "cannot_dm_bot": "the member is a bot, which cannot receive direct messages; unsubscribe it",
    "messages_tab_disabled": "turn on the app's Messages tab (App Home → Show Tabs → Messages Tab) and reinstall",
    "missing_scope": "give the Slack app the im:write, chat:write and im:history scopes (deploy/slack-app-manifest.yaml), then reinstall it",
}


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


def _classify(
    e: SlackApiError,
    channel: str,
    fixes: dict[str, str] = FIXES,
    method: str = "chat.postMessage",
    token: str = "SLACK_BOT_TOKEN",
) -> SendError:
    """A Slack API error as a transient or permanent failure whose message says the fix; a
    refused bot token (`TOKEN_ERRORS`; `token` says which) as a `ChannelDownError`."""
    code = _code(e)
    status = e.response.status_code if e.response is not None else 0
    if status == 429 or status >= 500 or code in RETRYABLE:
        # The pipeline waits at least this long before its next try (Slack's Retry-After).
        return TransientSendError(
            f"Slack answered {status} {code or '(no error code)'}; will retry",
            retry_after=header_seconds(e.response.headers if e.response is not None else {}),
        )
    fix = fixes.get(code, f"see https://api.slack.com/methods/{method}#errors")
    detail = _details(e)
    if code in TOKEN_ERRORS:
        return ChannelDownError(
            f"Slack refused {token}: {code}{f' ({detail})' if detail else ''}; {fix}"
        )
    return PermanentSendError(
        f"Slack refused the post to {channel}: {code or status}{f' ({detail})' if detail else ''}; {fix}"
    )
