"""Mail the web sends itself (confirmation links): over SMTP, or into the outbox folder."""

from __future__ import annotations

import os
import secrets
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..config import Settings
from ..errors import ConfigError, PermanentSendError, TransientSendError


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
    """Send `msg` over DIGESTBOT_SMTP_URL, or write it to `outbox/_web/` when SMTP is not configured."""
    if not settings.smtp_url:
        folder = settings.resolve(settings.outbox_dir) / "_web"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}.eml"
        tmp = Path(f"{path}.tmp")
        tmp.write_bytes(bytes(msg))
        os.replace(tmp, path)
        return str(path)
    parts = urlsplit(settings.smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("not an SMTP URL; write smtp://user@host:587, smtps://host:465 or smtp://127.0.0.1:2525",
                          key="DIGESTBOT_SMTP_URL")
    host, tls = parts.hostname, parts.scheme == "smtps"
    port = parts.port or (465 if tls else 587)
    user = unquote(parts.username or "")
    # As the email channel does: STARTTLS except on port 25 and loopback.
    starttls = not tls and port != 25 and host not in ("127.0.0.1", "localhost", "::1")
    try:
        conn = (smtplib.SMTP_SSL(host, port, timeout=30, context=ssl.create_default_context()) if tls
                else smtplib.SMTP(host, port, timeout=30))
        with conn:
            if starttls:
                conn.starttls(context=ssl.create_default_context())
            if user:
                conn.login(user, settings.smtp_password)
            conn.send_message(msg)
    except smtplib.SMTPResponseException as e:
        err = PermanentSendError if e.smtp_code >= 500 else TransientSendError
        raise err(f"SMTP {host}:{port} answered {e.smtp_code}; check DIGESTBOT_SMTP_URL and the server's log") from e
    except smtplib.SMTPRecipientsRefused as e:
        raise PermanentSendError(f"SMTP {host}:{port} refused the recipient; check the address") from e
    except (OSError, smtplib.SMTPException) as e:
        raise TransientSendError(f"cannot send through SMTP {host}:{port} ({e}); check that it is reachable") from e
    return str(msg["Message-ID"])
