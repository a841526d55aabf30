"""Email: the digest as a multipart message, sent over SMTP (plain, STARTTLS or TLS)."""

from __future__ import annotations

import base64
import binascii
import email.policy
import hashlib
import logging
import re
import smtplib
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import ClassVar

from ..addresses import is_address
from ..bounces.verp import return_path
from ..config import Settings
from ..errors import (
    ConfigError,
    PermanentSendError,
    SendError,
    TransientSendError,
    UnreachableError,
)
from ..models import Digest, Receipt, Subscriber
from ..render import MAX_HTML, RenderedEmail, clean, link, render_email
from ._registry import Channel, Field, Limits, Rate, register
from .smtp import SmtpServer, enhanced_status, reply_text

log = logging.getLogger(__name__)

# Connecting failed this way: no server there (refused, timed out, no such host, hung up at once).
_DOWN = (ConnectionError, TimeoutError, socket.gaierror, smtplib.SMTPServerDisconnected)
_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_DOTS = re.compile(r"\.{2,}")
LINE = 78  # RFC 5322 §2.1.1: a header line should stay within 78 characters (998 at most)


def _atom(text: str) -> str:
    """Text fit for the left side of a Message-ID or a List-Id (a dot-atom, RFC 5322 §3.6.4):
    other characters become '-', a run of dots one dot (a subscriber `a..b`)."""
    return _DOTS.sub(".", _NOT_ATEXT.sub("-", text)).strip(".") or "x"


def _domain(settings: Settings) -> str:
    return parseaddr(settings.from_addr)[1].rpartition("@")[2] or "digestbot.local"


def message_id(digest: Digest, settings: Settings) -> str:
    """The deterministic Message-ID of a digest: a re-send after a crash carries the same one."""
    return f"<{_atom(digest.id)}@{_domain(settings)}>"


@dataclass(frozen=True, slots=True)
class Wire:
    """A digest email as it goes over SMTP: envelope, Message-ID and the exact bytes."""

    sender: str
    recipient: str
    message_id: str
    data: bytes


def _qp(text: str) -> bytes:
    """Quoted-printable body, CRLF line ends, no line over 76 characters (binascii: fast, in C)."""
    return binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True).replace(
        b"\n", b"\r\n"
    )


def encoded_words(text: str) -> str:
    """Text as RFC 2047 encoded words (UTF-8, base64), separated by spaces for `_fold`."""
    chunks: list[str] = []
    chunk: list[str] = []
    size = 0
    for ch in text:
        n = len(ch.encode())
        if (
            size + n > 39
        ):  # 39 bytes → 52 base64 characters: a line with its header name stays under 78
            chunks.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    chunks.append("".join(chunk))
    return " ".join(f"=?utf-8?b?{base64.b64encode(c.encode()).decode()}?=" for c in chunks if c)


def _plain_ok(text: str, room: int) -> bool:
    """Whether text can go in a header as it is: ASCII, nothing a mail program would decode as
    an encoded word (`=?`), and no word too long to fold within `room` characters."""
    return text.isascii() and "=?" not in text and all(len(w) <= room for w in text.split(" "))


def _fold(name: str, value: str) -> str:
    """`name: value` and CRLF, folded before spaces into lines of about `LINE` characters."""
    lines: list[str] = []
    line = f"{name}:"
    for word in value.split(" "):
        if len(line) + 1 + len(word) > LINE and line.strip() and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _header(name: str, value: str) -> str:
    """One header line, folded; text that is not plain ASCII as RFC 2047 encoded words."""
    value = clean(value)
    room = LINE - len(name) - 2
    return _fold(name, value if _plain_ok(value, room) else encoded_words(value))


def _address(name: str, addr: str) -> str:
    """`Name <addr>`, the name quoted or RFC 2047 encoded as needed."""
    name = clean(name)
    if not name or _plain_ok(name, LINE // 2):
        return formataddr((name, addr))
    return f"{encoded_words(name)} <{addr}>"


def sender_address(settings: Settings) -> tuple[str, str]:
    """The sender's name and address from DIGESTBOT_FROM; `PermanentSendError` when it is no address."""
    name, addr = parseaddr(clean(settings.from_addr))
    if not is_address(addr, dotted=False):
        raise PermanentSendError(
            f"DIGESTBOT_FROM: {settings.from_addr!r} is not an address; "
            "write e.g. 'Lab digest <digest@example.org>'"
        )
    return name, addr


def wire_message(digest: Digest, settings: Settings, now: datetime | None = None) -> Wire:
    """The digest as an email, text part first and HTML last, with a newsletter's headers, as bytes.

    Written directly rather than through `email.message`, whose header machinery costs more than
    the whole SMTP exchange; `build_message` parses these bytes back for anyone who wants objects.
    """
    rendered = render_email(digest, settings)
    sub = digest.subscriber
    sender_name, sender = sender_address(settings)
    rcpt = clean(sub.email)
    if not is_address(rcpt):
        raise PermanentSendError(
            f"the address {sub.email!r} of {sub.id} is not a plain ASCII address; "
            "fix email in its subscription file"
        )
    mid = message_id(digest, settings)
    boundary = (
        "=_digest_" + hashlib.sha256(digest.id.encode()).hexdigest()[:24]
    )  # deterministic, never in QP text
    head = "".join(
        [
            _header("Subject", rendered.subject),
            _fold("From", _address(sender_name, sender)),
            _fold("To", _address(sub.name if sub.name and sub.name != sub.id else "", rcpt)),
            f"Date: {format_datetime(now or datetime.now(UTC))}\r\n",
            f"Message-ID: {mid}\r\n",
            f"List-Id: digestbot digest <{_atom(sub.id)}.digestbot.{_domain(settings)}>\r\n",
            f"List-Unsubscribe: <{clean(link(settings, 'unsubscribe', digest))}>\r\n",
            # RFC 8058 §3.1: one-click unsubscribing only over HTTPS
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" if settings.https_links else "",
            f"X-Digestbot-Digest: {_atom(digest.id)}\r\n",
            "MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n',
            "\r\n",
        ]
    )
    part = 'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    data = b"".join(
        [
            head.encode("ascii"),
            f"--{boundary}\r\n{part.format('plain')}".encode(),
            _qp(rendered.text),
            b"\r\n",
            f"--{boundary}\r\n{part.format('html')}".encode(),
            _qp(rendered.html),
            b"\r\n",
            f"--{boundary}--\r\n".encode(),
        ]
    )
    return Wire(return_path(settings, sub.id) or sender, rcpt, mid, data)


def build_message(digest: Digest, settings: Settings, now: datetime | None = None) -> EmailMessage:
    """The digest as an `EmailMessage` (parsed from `wire_message`'s bytes)."""
    msg = message_from_bytes(wire_message(digest, settings, now).data, policy=WIRE_POLICY)
    assert isinstance(msg, EmailMessage)
    return msg


# Generating a parsed message again keeps its lines as they are (none is over 998 characters).
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)


def message_bytes(msg: EmailMessage) -> bytes:
    """The message exactly as it goes over SMTP (CRLF line ends): for a built digest, the wire bytes."""
    return msg.as_bytes(policy=WIRE_POLICY)


def envelope(msg: EmailMessage) -> tuple[str, str]:
    """The envelope sender and recipient of a built message."""
    return parseaddr(str(msg["From"]))[1], parseaddr(str(msg["To"]))[1]


@register("email")
class Smtp(Channel):
    """Sends digests over SMTP, one connection reused across messages, reconnecting when dropped."""

    fields = (
        Field(
            "email", 'email = "…"', is_address, "an email address", 'email = "alice@example.org"'
        ),
    )
    destination = "an email address"
    rate_limit = Rate(setting="smtp_rate")  # [smtp] rate, across the whole run (the pool's too)
    limits = Limits(max_bytes=MAX_HTML)  # the HTML part: Gmail clips longer messages
    settings_table = "smtp"
    settings_keys: ClassVar[dict[str, str]] = {"url": "smtp_url", "rate": "smtp_rate"}
    outbox_suffix = "eml"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._conn: smtplib.SMTP | None = None
        self.server = SmtpServer.from_settings(settings)
        self.host, self.port = self.server.host, self.server.port
        try:
            sender_address(settings)
        except PermanentSendError as e:
            raise ConfigError(str(e).removeprefix("DIGESTBOT_FROM: "), key="DIGESTBOT_FROM") from e
        self.sent = 0
        self.connects = 0
        self._ready: dict[
            str, tuple[Digest, Wire]
        ] = {}  # digests rendered ahead by `prepare`, by id

    @classmethod
    def ready(cls, subscriber: Subscriber, settings: Settings) -> bool:
        """Email goes out when DIGESTBOT_SMTP_URL is set."""
        return bool(settings.smtp_url)

    @classmethod
    def missing(cls, subscriber: Subscriber, settings: Settings) -> str:
        """DIGESTBOT_SMTP_URL, when it is not set."""
        return "" if settings.smtp_url else "email needs DIGESTBOT_SMTP_URL, which is not set"

    @classmethod
    def render(cls, digest: Digest, settings: Settings) -> RenderedEmail:
        """The two parts of the digest email."""
        return render_email(digest, settings)

    @classmethod
    def outbox_bytes(cls, digest: Digest, settings: Settings) -> bytes:
        """The `.eml` that SMTP would carry."""
        return wire_message(digest, settings).data

    def _connect(self) -> tuple[smtplib.SMTP, bool]:
        """The open connection, or a new one; and whether it is new."""
        if self._conn is not None:
            return self._conn, False
        try:
            self._conn = self.server.connect(self.settings.smtp_password)
        except TransientSendError as e:
            if isinstance(e.__cause__, _DOWN):
                raise UnreachableError(
                    f"cannot connect to SMTP {self.server.where} ({e.__cause__}); check that the "
                    "server is running and that DIGESTBOT_SMTP_URL names it; will retry"
                ) from e
            raise
        self.connects += 1
        return self._conn, True

    def send(self, digest: Digest) -> Receipt:
        """Send one digest; 4xx and lost connections raise `TransientSendError`, 5xx `PermanentSendError`."""
        ready = self._ready.pop(digest.id, None)
        wire = (
            ready[1]
            if ready is not None and ready[0] == digest
            else wire_message(digest, self.settings)
        )
        self.wait_turn(digest)
        reply = self.transaction(wire.sender, wire.recipient, wire.data)
        self.sent += 1
        return Receipt("email", wire.recipient, f"{wire.message_id} {reply}".strip())

    def prepare(self, digest: Digest) -> None:
        """Render a digest's message ahead of `send`, which takes it if the digest is the same
        (a retry, or a digest whose entries the claim trimmed, is rendered again)."""
        if len(self._ready) > 16:  # ones never sent (their slot was claimed elsewhere): let them go
            self._ready.clear()
        self._ready[digest.id] = (digest, wire_message(digest, self.settings))

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
                    log.info(
                        "SMTP connection to %s:%s was closed by the server; reconnecting",
                        self.host,
                        self.port,
                    )
                    continue
                raise TransientSendError(
                    f"SMTP connection to {self.host}:{self.port} lost ({e}); will retry"
                ) from e
            break
        try:
            if code != 250:
                self._fail("sender", sender, code, text, "check DIGESTBOT_FROM")
            code, text = conn.rcpt(rcpt)
            if code not in (250, 251):
                self._fail(
                    "recipient",
                    rcpt,
                    code,
                    text,
                    "check the email address in the subscription file",
                )
            code, text = conn.data(data)
            if code != 250:
                self._fail("message to", rcpt, code, text, "see the server's reason")
        except smtplib.SMTPDataError as e:
            self._fail("message to", rcpt, e.smtp_code, e.smtp_error, "see the server's reason")
        except (OSError, smtplib.SMTPServerDisconnected) as e:
            self._drop()
            raise TransientSendError(
                f"SMTP connection to {self.host}:{self.port} lost while sending to {rcpt} ({e}); will retry"
            ) from e
        return f"{code} {reply_text(text)}"

    def _fail(self, what: str, who: str, code: int, text: bytes | str, fix: str) -> None:
        """A refusal: reset the transaction (or drop the connection on 421) and raise by class."""
        reason = f"SMTP refused the {what} {who}: {code} {reply_text(text)}"
        if code == 421 or code < 400:
            self._drop()
        else:
            try:
                self._conn.rset() if self._conn else None
            except (OSError, smtplib.SMTPException):
                self._drop()
        error: SendError = (
            TransientSendError(f"{reason}; will retry")
            if 400 <= code < 500 or code < 400
            else PermanentSendError(f"{reason}; {fix}")
        )
        error.smtp_stage, error.smtp_code, error.smtp_status = what, code, enhanced_status(text)
        raise error

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def close(self) -> None:
        """Say QUIT and close the connection."""
        self._ready.clear()
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()
