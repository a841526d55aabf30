"""Secrets out of text: webhook URLs, tokens, API keys and passwords in URLs, masked with ***.

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
            r"([?&;](?:token|access_token|api_key|apikey|key|password|passwd|pass|secret|client_secret)=)"
            r"[^&;\s'\"#]+",
            re.IGNORECASE,
        ),
        r"\1***",
    ),
    # user:password@ in URLs (database, broker, SMTP).
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*:)[^\s@/'\"]+@"), r"\1***@"),
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
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        return True
