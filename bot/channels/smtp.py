"""The one SMTP client setup: DIGESTBOT_SMTP_URL parsed, TLS or STARTTLS by its rules, login.

Used by the email channel (digests) and by the web app's mailer (confirmation links).
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from dataclasses import dataclass

from ..config import Settings
from ..config_values import LOOPBACK_HOSTS, parse_smtp_url
from ..errors import ChannelDownError, ConfigError, TransientSendError

log = logging.getLogger(__name__)

TIMEOUT = 30.0  # seconds for connecting and for each SMTP reply
LOOPBACK = LOOPBACK_HOSTS


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
    # On this machine (127.0.0.1, ::1, localhost): STARTTLS is used when offered, not required.
    # Elsewhere it is required, except on port 25 (server to server) without a login: a password
    # never goes to another host unencrypted, on any port.
    loopback: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpServer:
        """The server of DIGESTBOT_SMTP_URL; `ConfigError` with the fix when it is no SMTP URL
        or when mail may not go out to it (`Settings.sending_problem`)."""
        try:
            url = parse_smtp_url(settings.smtp_url)
        except ValueError as e:
            raise ConfigError(str(e), key="DIGESTBOT_SMTP_URL") from e
        refused = settings.sending_problem()
        if refused is not None:
            raise refused
        return cls(url.host, url.port, url.tls, url.user, url.loopback)

    @property
    def where(self) -> str:
        """host:port, for messages."""
        return f"{self.host}:{self.port}"

    def _tls_context(self) -> ssl.SSLContext:
        # The system's CAs; SSL_CERT_FILE names another bundle (a private CA, a test certificate).
        return ssl.create_default_context()

    def connect(self, password: str) -> smtplib.SMTP:
        """An open connection, encrypted as the rules say, logged in; failures as `SendError`s.

        What no retry mends before the setup is fixed (the login refused, the certificate not
        trusted, no STARTTLS or AUTH where it is needed) is a `ChannelDownError`: the run stops
        trying the server rather than failing each digest and logging in again for each.
        """
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
                    self._login(conn, password)
            except BaseException:
                conn.close()
                raise
        except smtplib.SMTPAuthenticationError as e:
            said = reply_text(e.smtp_error)
            log.info(
                "SMTP %s refused the login for %r: %s %s",
                where,
                self.user,
                e.smtp_code,
                said.replace(password, "***") if password else said,
            )
            if 400 <= e.smtp_code < 500:
                raise ChannelDownError(
                    f"the SMTP server {where} could not log in {self.user!r} for now "
                    f"({e.smtp_code}); if it persists, check the server's log"
                ) from e
            raise ChannelDownError(
                f"the SMTP server {where} refused the login for {self.user!r} ({e.smtp_code}); "
                "check the user in DIGESTBOT_SMTP_URL and DIGESTBOT_SMTP_PASSWORD"
            ) from e
        except smtplib.SMTPNotSupportedError as e:
            raise ChannelDownError(
                f"the SMTP server {where} does not support AUTH ({e}); remove the user from DIGESTBOT_SMTP_URL"
            ) from e
        except ssl.SSLCertVerificationError as e:
            raise ChannelDownError(
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

    def _login(self, conn: smtplib.SMTP, password: str) -> None:
        """One AUTH, with the first mechanism the server offers in smtplib's order of preference.

        smtplib's `login` tries every offered mechanism in turn, so one wrong password counted as
        two or three failed logins against the account (lockout counters count each AUTH).
        """
        if not conn.has_extn("auth"):
            raise smtplib.SMTPNotSupportedError("the server offers no AUTH")
        offered = conn.esmtp_features["auth"].upper().split()
        for mechanism in ("CRAM-MD5", "PLAIN", "LOGIN"):
            if mechanism in offered:
                conn.user, conn.password = self.user, password
                conn.auth(mechanism, getattr(conn, "auth_" + mechanism.lower().replace("-", "_")))
                return
        raise ChannelDownError(
            f"the SMTP server {self.where} offers AUTH only as {' '.join(offered) or 'nothing'}, "
            "and digestbot logs in with CRAM-MD5, PLAIN or LOGIN; use a server (or port) that "
            "offers one of them"
        )

    def _secure(self, conn: smtplib.SMTP) -> None:
        """EHLO, then STARTTLS when offered. A server off this machine that does not offer it is
        refused, except on port 25 without a login: credentials never cross the network in clear."""
        conn.ehlo()
        if self.tls:
            return
        if conn.has_extn("starttls"):
            conn.starttls(context=self._tls_context())
            conn.ehlo()
        elif self.loopback:
            return
        elif self.user:
            raise ChannelDownError(
                f"the SMTP server {self.where} does not offer STARTTLS, and digestbot never sends "
                f"the password of {self.user!r} unencrypted over the network; use smtps://host:465, "
                "or a server that offers STARTTLS"
            )
        elif self.port != 25:
            raise ChannelDownError(
                f"the SMTP server {self.where} does not offer STARTTLS, and digestbot sends only "
                "encrypted over the network; use smtps://host:465, or a server that offers STARTTLS"
            )
