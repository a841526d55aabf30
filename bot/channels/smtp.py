"""The one SMTP client setup: DIGESTBOT_SMTP_URL parsed, TLS or STARTTLS by its rules, login.

Used by the email channel (digests) and by the web app's mailer (confirmation links).
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..config import Settings
from ..errors import ConfigError, PermanentSendError, TransientSendError

log = logging.getLogger(__name__)

TIMEOUT = 30.0  # seconds for connecting and for each SMTP reply
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def reply_text(text: bytes | str) -> str:
    """An SMTP reply's text, decoded and stripped."""
    return (text.decode(errors="replace") if isinstance(text, bytes) else text).strip()


_ENHANCED = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")


def enhanced_status(text: bytes | str) -> str:
    """The RFC 3463 enhanced status code at the head of an SMTP reply's text ("5.1.1"), or ""."""
    found = _ENHANCED.search(reply_text(text)[:40])
    return found.group(1) if found else ""


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where DIGESTBOT_SMTP_URL points, and how to talk to it."""

    host: str
    port: int
    tls: bool  # smtps://: TLS from the start
    user: str
    # STARTTLS is required, except on loopback and port 25 (server to server), where it is used
    # when the server offers it.
    loopback: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpServer:
        """The server of DIGESTBOT_SMTP_URL; `ConfigError` with the fix when it is no SMTP URL."""
        parts = urlsplit(settings.smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(
                f"{parts.scheme or '(no scheme)'}://… is not an SMTP URL; write smtp://user@host:587 (STARTTLS), "
                "smtps://host:465 (TLS) or smtp://127.0.0.1:2525 (plain)",
                key="DIGESTBOT_SMTP_URL",
            )
        tls = parts.scheme == "smtps"
        try:
            port = parts.port or (465 if tls else 587)
        except ValueError as e:
            raise ConfigError(
                f"bad port ({e}); write e.g. smtp://user@host:587", key="DIGESTBOT_SMTP_URL"
            ) from e
        host = parts.hostname
        return cls(host, port, tls, unquote(parts.username or ""), host in LOOPBACK or port == 25)

    @property
    def where(self) -> str:
        """host:port, for messages."""
        return f"{self.host}:{self.port}"

    def _tls_context(self) -> ssl.SSLContext:
        # The system's CAs; SSL_CERT_FILE names another bundle (a private CA, a test certificate).
        return ssl.create_default_context()

    def connect(self, password: str) -> smtplib.SMTP:
        """An open connection, encrypted as the rules say, logged in; failures as `SendError`s."""
        where = self.where
        try:
            conn: smtplib.SMTP
            if self.tls:
                conn = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=TIMEOUT, context=self._tls_context()
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT)
            try:
                self._secure(conn)
                if self.user:
                    conn.login(self.user, password)
            except BaseException:
                conn.close()
                raise
        except smtplib.SMTPAuthenticationError as e:
            log.info(
                "SMTP %s refused the login for %r: %s %s",
                where,
                self.user,
                e.smtp_code,
                reply_text(e.smtp_error),
            )
            raise PermanentSendError(
                f"the SMTP server refused the login for {self.user!r} ({e.smtp_code}); "
                "check DIGESTBOT_SMTP_URL and DIGESTBOT_SMTP_PASSWORD"
            ) from e
        except smtplib.SMTPNotSupportedError as e:
            raise PermanentSendError(
                f"the SMTP server {where} does not support AUTH ({e}); remove the user from DIGESTBOT_SMTP_URL"
            ) from e
        except ssl.SSLCertVerificationError as e:
            raise PermanentSendError(
                f"the TLS certificate of {where} is not trusted ({e.verify_message}); use the server's real "
                "host name, or set SSL_CERT_FILE to its CA bundle"
            ) from e
        except smtplib.SMTPResponseException as e:
            raise TransientSendError(
                f"SMTP {where} answered {e.smtp_code} {reply_text(e.smtp_error)} on connect; will retry"
            ) from e
        except (OSError, smtplib.SMTPException) as e:
            raise TransientSendError(f"cannot connect to SMTP {where} ({e}); will retry") from e
        return conn

    def _secure(self, conn: smtplib.SMTP) -> None:
        """EHLO, then STARTTLS when offered; a server that does not offer it is refused, except on
        loopback and port 25."""
        conn.ehlo()
        if self.tls:
            return
        if conn.has_extn("starttls"):
            conn.starttls(context=self._tls_context())
            conn.ehlo()
        elif not self.loopback:
            raise PermanentSendError(
                f"the SMTP server {self.where} does not offer STARTTLS, and digestbot sends only "
                "encrypted over the network; use smtps://host:465, or a server that offers STARTTLS"
            )
