"""Secrets out of text: webhook URLs, tokens, API keys and passwords in URLs, masked with ***.

The signed links of the web front (`/manage/…`, `/unsubscribe/…`, `/confirm/…`, `/digest/…`,
`/feed/…`, `/feedback/…`) act for a subscriber, and Slack's OAuth redirect carries a one-time
`code`: they are masked too, so `digestbot serve`'s access log does not hand them out.

`SecretFilter` applies it to every log record (installed by `bot._console.setup_logging` on
digestbot's handler, so slack-sdk's and urllib3's records at -v/-vv pass through it too);
messages that quote a peer's error use `mask_secrets` directly.
"""

from __future__ import annotations

import logging
import re

_PATTERNS = (
    # Slack incoming webhooks (and workflow triggers, and a command's or an action's
    # response_url): the path is the secret.
    (
        re.compile(
            r"(hooks\.slack\.com/(?:services|workflows|triggers|commands|actions)/)[^\s'\"<>)\]]+"
        ),
        r"\1***",
    ),
    # Slack tokens: bot, user, app-level, refresh, …
    (re.compile(r"\b(xox[a-z]|xapp)-[A-Za-z0-9-]+"), r"\1-***"),
    # HTTP Authorization values (slack-sdk's debug log prints its request headers): the Slack
    # app's client id and secret travel as Basic, tokens as Bearer.
    (re.compile(r"\b((?:Basic|Bearer)\s+)[A-Za-z0-9+/=._~-]{6,}"), r"\1***"),
    # Secrets in query strings: ?token=…, &api_key=…, ?password=…
    (
        re.compile(
            r"([?&;](?:token|access_token|api_key|apikey|key|password|passwd|pass|secret|client_secret|code)=)"
            r"[^&;\s'\"#]+",
            re.IGNORECASE,
        ),
        r"\1***",
    ),
    # user:password@ in URLs (database, broker, SMTP); a password may hold "/" (base64), even
    # after digits ("u:2024/pass@db"). Only in an http(s) link are digits and a "/" a port and a
    # path ("https://host:8443/people/a@b.org"): DSNs carry passwords, web pages hardly do.
    (
        re.compile(
            r"((?<![A-Za-z0-9+.-])(?![Hh][Tt][Tt][Pp][Ss]?://)[A-Za-z][A-Za-z0-9+.-]*://"
            r"[^\s:/@'\"]*:)[^\s@'\"]+@"
        ),
        r"\1***@",
    ),
    (re.compile(r"((?i:https?)://[^\s:/@'\"]*:)(?!\d{1,5}/)[^\s@'\"]+@"), r"\1***@"),
    # The web front's signed links: the path segment after the route is the bearer token.
    (
        re.compile(r"(/(?:manage|unsubscribe|confirm|digest|feed|feedback)/)[A-Za-z0-9_.=-]{16,}"),
        r"\1***",
    ),
)


def mask_secrets(text: str) -> str:
    """`text` with every secret this module knows of replaced by ***."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class SecretFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit: logging reports it itself
            return True
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = _masked_record(record, masked)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        return True


def _masked_record(
    record: logging.LogRecord, masked: str
) -> tuple[object, tuple[object, ...] | None]:
    """(msg, args) that format to `masked`: the arguments masked one by one when that is
    enough, so a formatter that reads `args` itself (uvicorn's access log) still finds them;
    else the masked message with no arguments."""
    if isinstance(record.args, tuple) and record.args:
        args = tuple(mask_secrets(a) if isinstance(a, str) else a for a in record.args)
        try:
            if str(record.msg) % args == masked:
                return record.msg, args
        except (TypeError, ValueError):
            pass
    return masked, None
