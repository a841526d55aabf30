"""Email: the digest as a multipart message, sent over SMTP (plain, STARTTLS or TLS)."""

from __future__ import annotations

import email.policy
import logging
import re
import smtplib
import ssl
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import unquote, urlsplit

from ..config import Settings
from ..errors import ConfigError, PermanentSendError, TransientSendError
from ..models import Digest, Receipt
from ..render import link, render_email
from . import Channel, register
from ._ratelimit import per_second, shared

log = logging.getLogger(__name__)

TIMEOUT = 30.0  # seconds for connecting and for each SMTP reply
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")


def _atom(text: str) -> str:
    """Text fit for the left side of a Message-ID or a List-Id: other characters become '-'."""
    return _NOT_ATEXT.sub("-", text).strip(".") or "x"


def _domain(settings: Settings) -> str:
    return parseaddr(settings.from_addr)[1].rpartition("@")[2] or "digestbot.local"


def message_id(digest: Digest, settings: Settings) -> str:
    """The deterministic Message-ID of a digest: a re-send after a crash carries the same one."""
    return f"<{_atom(digest.id)}@{_domain(settings)}>"


def build_message(digest: Digest, settings: Settings, now: datetime | None = None) -> EmailMessage:
    """The digest as an email: text part first, HTML last, with the headers a good newsletter has."""
    rendered = render_email(digest, settings)
    sub = digest.subscriber
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = rendered.subject
    msg["From"] = settings.from_addr
    try:
        to = Address(display_name=sub.name if sub.name and sub.name != sub.id else "", addr_spec=sub.email)
    except (ValueError, IndexError) as e:
        raise PermanentSendError(f"the address {sub.email!r} of {sub.id} is not valid ({e}); fix email in its subscription file") from e
    msg["To"] = to
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = message_id(digest, settings)
    msg["List-Id"] = f"digestbot digest <{_atom(sub.id)}.digestbot.{_domain(settings)}>"
    msg["List-Unsubscribe"] = f"<{link(settings, 'unsubscribe', digest)}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
    msg["X-Digestbot-Digest"] = _atom(digest.id)
    # quoted-printable: 7-bit safe for any server, and no line over 76 characters.
    msg.set_content(rendered.text, cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return msg


# Headers are generated without folding below 998 characters: folding at 78 would turn the
# unbreakable List-Unsubscribe URL into RFC 2047 encoded words, which mail clients do not read.
# The body parts are encoded before this, at 76-character quoted-printable lines.
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)


def message_bytes(msg: EmailMessage) -> bytes:
    """The message exactly as it goes over SMTP (CRLF line ends); the outbox writes these bytes."""
    return msg.as_bytes(policy=WIRE_POLICY)


def envelope(msg: EmailMessage) -> tuple[str, str]:
    """The envelope sender and recipient of a built message."""
    return parseaddr(str(msg["From"]))[1], parseaddr(str(msg["To"]))[1]


def _reply(text: bytes | str) -> str:
    return (text.decode(errors="replace") if isinstance(text, bytes) else text).strip()


@register("email")
class Smtp(Channel):
    """Sends digests over SMTP, one connection reused across messages, reconnecting when dropped."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._conn: smtplib.SMTP | None = None
        parts = urlsplit(settings.smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(
                f"{parts.scheme or '(no scheme)'}://… is not an SMTP URL; write smtp://user@host:587 (STARTTLS), "
                "smtps://host:465 (TLS) or smtp://127.0.0.1:2525 (plain)", key="DIGESTBOT_SMTP_URL")
        self.tls = parts.scheme == "smtps"
        self.host = parts.hostname
        try:
            self.port = parts.port or (465 if self.tls else 587)
        except ValueError as e:
            raise ConfigError(f"bad port ({e}); write e.g. smtp://user@host:587", key="DIGESTBOT_SMTP_URL") from e
        self.user = unquote(parts.username or "")
        # STARTTLS is required except on loopback, where it is used if the server offers it.
        self.loopback = self.host in LOOPBACK
        self.limiter = shared("smtp", per_second(settings.smtp_rate))
        self.sent = 0
        self.connects = 0

    def _tls_context(self) -> ssl.SSLContext:
        # The system's CAs; SSL_CERT_FILE names another bundle (a private CA, a test certificate).
        return ssl.create_default_context()

    def _connect(self) -> tuple[smtplib.SMTP, bool]:
        """The open connection, or a new one; and whether it is new."""
        if self._conn is not None:
            return self._conn, False
        where = f"{self.host}:{self.port}"
        try:
            conn: smtplib.SMTP
            if self.tls:
                conn = smtplib.SMTP_SSL(self.host, self.port, timeout=TIMEOUT, context=self._tls_context())
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT)
            try:
                conn.ehlo()
                if not self.tls:
                    if conn.has_extn("starttls"):
                        conn.starttls(context=self._tls_context())
                        conn.ehlo()
                    elif not self.loopback:
                        raise PermanentSendError(
                            f"the SMTP server {where} does not offer STARTTLS, and digestbot sends only "
                            "encrypted over the network; use smtps://host:465, or a server that offers STARTTLS")
                if self.user:
                    conn.login(self.user, self.settings.smtp_password)
            except BaseException:
                conn.close()
                raise
        except smtplib.SMTPAuthenticationError as e:
            raise PermanentSendError(
                f"the SMTP server {where} refused the login for {self.user!r} ({e.smtp_code} {_reply(e.smtp_error)}); "
                "check the user in DIGESTBOT_SMTP_URL and DIGESTBOT_SMTP_PASSWORD") from e
        except smtplib.SMTPNotSupportedError as e:
            raise PermanentSendError(f"the SMTP server {where} does not support AUTH ({e}); remove the user from DIGESTBOT_SMTP_URL") from e
        except ssl.SSLCertVerificationError as e:
            raise PermanentSendError(
                f"the TLS certificate of {where} is not trusted ({e.verify_message}); use the server's real "
                "host name, or set SSL_CERT_FILE to its CA bundle") from e
        except smtplib.SMTPResponseException as e:
            raise TransientSendError(f"SMTP {where} answered {e.smtp_code} {_reply(e.smtp_error)} on connect; will retry") from e
        except (OSError, smtplib.SMTPException) as e:
            raise TransientSendError(f"cannot connect to SMTP {where} ({e}); will retry") from e
        self._conn = conn
        self.connects += 1
        return conn, True

    def send(self, digest: Digest) -> Receipt:
        """Send one digest; 4xx and lost connections raise `TransientSendError`, 5xx `PermanentSendError`."""
        msg = build_message(digest, self.settings)
        sender, rcpt = envelope(msg)
        self.limiter.wait()
        reply = self.transaction(sender, rcpt, message_bytes(msg))
        self.sent += 1
        return Receipt("email", rcpt, f"{msg['Message-ID']} {reply}".strip())

    def transaction(self, sender: str, rcpt: str, data: bytes) -> str:
        """MAIL, RCPT, DATA on the shared connection; a connection found dead before DATA is
        re-opened once at once (nothing was sent on it), a later loss is a transient failure."""
        for attempt in (0, 1):
            conn, fresh = self._connect()
            try:
                code, text = conn.mail(sender)
            except (OSError, smtplib.SMTPServerDisconnected) as e:
                self._drop()
                if not fresh and attempt == 0:
                    log.info("SMTP connection to %s:%s was closed by the server; reconnecting", self.host, self.port)
                    continue
                raise TransientSendError(f"SMTP connection to {self.host}:{self.port} lost ({e}); will retry") from e
            break
        try:
            if code != 250:
                self._fail("sender", sender, code, text, "check DIGESTBOT_FROM")
            code, text = conn.rcpt(rcpt)
            if code not in (250, 251):
                self._fail("recipient", rcpt, code, text, "check the email address in the subscription file")
            code, text = conn.data(data)
            if code != 250:
                self._fail("message to", rcpt, code, text, "see the server's reason")
        except smtplib.SMTPDataError as e:
            self._fail("message to", rcpt, e.smtp_code, e.smtp_error, "see the server's reason")
        except (OSError, smtplib.SMTPServerDisconnected) as e:
            self._drop()
            raise TransientSendError(f"SMTP connection to {self.host}:{self.port} lost while sending to {rcpt} ({e}); will retry") from e
        return f"{code} {_reply(text)}"

    def _fail(self, what: str, who: str, code: int, text: bytes | str, fix: str) -> None:
        """A refusal: reset the transaction (or drop the connection on 421) and raise by class."""
        reason = f"SMTP refused the {what} {who}: {code} {_reply(text)}"
        if code == 421 or code < 400:
            self._drop()
        else:
            try:
                self._conn.rset() if self._conn else None
            except (OSError, smtplib.SMTPException):
                self._drop()
        if 400 <= code < 500 or code < 400:
            raise TransientSendError(f"{reason}; will retry")
        raise PermanentSendError(f"{reason}; {fix}")

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def close(self) -> None:
        """Say QUIT and close the connection."""
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()
