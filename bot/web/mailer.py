"""Mail the web sends itself (confirmation links): over SMTP, or into the outbox folder."""

from __future__ import annotations

import os
import secrets
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from ..channels.outbox import chosen as outbox_chosen
from ..channels.smtp import SmtpServer
from ..config import Settings
from ..errors import PermanentSendError, TransientSendError

NOWHERE = (
    "the web front has nowhere to mail confirmation links: set DIGESTBOT_SMTP_URL "
    "(or, for a trial, outbox_dir in digestbot.toml)"
)


def destination(settings: Settings) -> str:
    """Where `send` puts mail: the SMTP server, the outbox folder, or "" when neither is chosen."""
    if settings.smtp_url:
        return SmtpServer.from_settings(settings).where
    if outbox_chosen(settings):
        return str(settings.resolve(settings.outbox_dir) / "_web")
    return ""


def build(settings: Settings, to: str, subject: str, text: str) -> EmailMessage:
    """A plain-text message from the configured sender."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = settings.from_addr
    msg["To"] = to
    msg["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(settings.from_addr)[1].rpartition("@")[2] or "digestbot.local"
    msg["Message-ID"] = make_msgid("digestbot-web", domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    return msg


def send(settings: Settings, msg: EmailMessage) -> str:
    """Send `msg` over DIGESTBOT_SMTP_URL (the email channel's connection: one set of TLS rules),
    or write it to `outbox/_web/` when SMTP is not configured and the config chooses the outbox
    (as for digests: never a silent fallback)."""
    if not settings.smtp_url:
        if not outbox_chosen(settings):
            raise PermanentSendError(NOWHERE)
        folder = settings.resolve(settings.outbox_dir) / "_web"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}.eml"
        tmp = Path(f"{path}.tmp")
        tmp.write_bytes(bytes(msg))
        os.replace(tmp, path)
        return str(path)
    server = SmtpServer.from_settings(settings)  # the email channel's URL, TLS and login rules
    conn = server.connect(settings.smtp_password)
    try:
        with conn:
            conn.send_message(msg)
    except smtplib.SMTPResponseException as e:
        err = PermanentSendError if e.smtp_code >= 500 else TransientSendError
        raise err(
            f"SMTP {server.where} answered {e.smtp_code}; check DIGESTBOT_SMTP_URL and the server's log"
        ) from e
    except smtplib.SMTPRecipientsRefused as e:
        raise PermanentSendError(
            f"SMTP {server.where} refused the recipient; check the address"
        ) from e
    except (OSError, smtplib.SMTPException) as e:
        raise TransientSendError(
            f"cannot send through SMTP {server.where} ({e}); check that it is reachable"
        ) from e
    return str(msg["Message-ID"])
