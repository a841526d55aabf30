"""Email: the digest as a multipart message, sent over SMTP (plain, STARTTLS or TLS)."""

from __future__ import annotations

import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from ..config import Settings
from ..errors import ConfigError, PermanentSendError, TransientSendError
from ..models import Digest, Receipt
from ..render import render_email
from . import Channel, register


def message_id(digest: Digest, settings: Settings) -> str:
    """The deterministic Message-ID of a digest: a re-send after a crash carries the same one."""
    domain = parseaddr(settings.from_addr)[1].rpartition("@")[2] or "digestbot.local"
    return f"<{digest.id}@{domain}>"


def build_message(digest: Digest, settings: Settings, now: datetime | None = None) -> EmailMessage:
    """The digest as an email: text part first, HTML last, with the headers a good newsletter has."""
    rendered = render_email(digest, settings)
    sub = digest.subscriber
    base = settings.base_url.rstrip("/")
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = settings.from_addr
    msg["To"] = formataddr((sub.name, sub.email)) if sub.name != sub.id else sub.email
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = message_id(digest, settings)
    msg["List-Id"] = f"digestbot digest <{sub.id}.digestbot.{urlsplit(base).hostname or 'localhost'}>"
    msg["List-Unsubscribe"] = f"<{base}/unsubscribe/{digest.id}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["X-Digestbot-Digest"] = digest.id
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


@register("email")
class Smtp(Channel):
    """Sends digests over SMTP, one connection reused across messages."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._conn: smtplib.SMTP | None = None
        parts = urlsplit(settings.smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(
                f"{parts.scheme}://… is not an SMTP URL; write smtp://user@host:587 (STARTTLS), "
                "smtps://host:465 (TLS) or smtp://127.0.0.1:2525 (plain)", key="DIGESTBOT_SMTP_URL")
        self.tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.tls else 587)
        self.user = unquote(parts.username or "")
        self.starttls = not self.tls and self.port != 25 and self.host not in ("127.0.0.1", "localhost", "::1")

    def _connect(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        conn: smtplib.SMTP | None = None
        try:
            if self.tls:
                conn = smtplib.SMTP_SSL(self.host, self.port, timeout=60, context=ssl.create_default_context())
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=60)
                if self.starttls:
                    conn.starttls(context=ssl.create_default_context())
            if self.user:
                conn.login(self.user, self.settings.smtp_password)
        except smtplib.SMTPAuthenticationError as e:
            conn.close()  # type: ignore[union-attr]  # login is the last step: conn exists
            raise PermanentSendError(f"the SMTP server refused the login for {self.user!r} ({e.smtp_code}); check DIGESTBOT_SMTP_URL and DIGESTBOT_SMTP_PASSWORD") from e
        except (OSError, smtplib.SMTPException) as e:
            if conn is not None:
                conn.close()
            raise TransientSendError(f"cannot connect to SMTP {self.host}:{self.port} ({e}); will retry") from e
        self._conn = conn
        return conn

    def send(self, digest: Digest) -> Receipt:
        msg = build_message(digest, self.settings)
        conn = self._connect()
        try:
            refused = conn.send_message(msg)
        except smtplib.SMTPRecipientsRefused as e:
            code, text = next(iter(e.recipients.values()))
            err = PermanentSendError if code >= 500 else TransientSendError
            raise err(f"SMTP refused {digest.subscriber.email}: {code} {text.decode(errors='replace')}") from e
        except smtplib.SMTPResponseException as e:
            self.close()
            err = PermanentSendError if e.smtp_code >= 500 else TransientSendError
            raise err(f"SMTP answered {e.smtp_code} {e.smtp_error.decode(errors='replace')}") from e
        except (OSError, smtplib.SMTPException) as e:
            self.close()
            raise TransientSendError(f"SMTP connection lost ({e}); will retry") from e
        if refused:
            raise PermanentSendError(f"SMTP refused {refused}")
        return Receipt("email", digest.subscriber.email, msg["Message-ID"])

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._conn = None
