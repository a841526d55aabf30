"""The SMTP peer: aiosmtpd on loopback that records what it accepts and misbehaves on request.

Plain, STARTTLS (`tls=`), implicit TLS (`implicit_tls=True`) and AUTH (`users=`); what it answers
is its `script`, which a test may change while the peer runs. It runs in a thread of the test
process, so a test can count deliveries even when the digestbot process that sent them was killed.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .net import free_port, wait_for

REFUSED = "550 5.1.1 no such user here"


@dataclass
class SmtpScript:
    """What the SMTP peer answers; anything not scripted is accepted."""

    data_replies: list[str] = field(
        default_factory=list
    )  # the next DATA answers, in order; "drop" closes the connection
    refuse: dict[str, str] | set[str] = field(
        default_factory=dict
    )  # recipients refused at RCPT, always: address → reply, or a set answered REFUSED
    tempfail_rcpt: int = 0  # answer the next N RCPTs with 451
    drop_after: set[int] = field(
        default_factory=set
    )  # close the connection once message #n (1-based) is accepted
    delay: float = 0.0  # seconds each DATA takes before its answer


@dataclass
class Mail:
    """One message the SMTP peer accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    session: int  # 1 for the first connection, 2 for the next…
    at: float  # time.monotonic() when it was accepted
    _parsed: EmailMessage | None = field(default=None, repr=False, compare=False)

    def parsed(self) -> EmailMessage:
        """The message, parsed with the modern email API."""
        if self._parsed is None:
            msg = message_from_bytes(self.data, policy=policy.default)
            assert isinstance(msg, EmailMessage)
            self._parsed = msg
        return self._parsed

    def __getitem__(self, header: str) -> Any:
        """A header of the message (None when absent), as `EmailMessage` gives it."""
        return self.parsed()[header]

    @property
    def to(self) -> tuple[str, ...]:
        """The envelope recipients."""
        return tuple(self.rcpt_tos)

    @property
    def message_id(self) -> str:
        """The Message-ID header."""
        return str(self["Message-ID"])

    @property
    def digest(self) -> str:
        """The X-Digestbot-Digest header ("" when absent)."""
        return str(self["X-Digestbot-Digest"] or "")


class _Handler:
    """aiosmtpd's handler: follows the peer's script and records into the peer."""

    def __init__(self, peer: SmtpPeer) -> None:
        self.peer = peer

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        peer, script = self.peer, self.peer.script
        with peer.lock:
            peer.rcpt_calls += 1
            peer._session(session)
            if address in script.refuse:
                return script.refuse[address] if isinstance(script.refuse, dict) else REFUSED
            if script.tempfail_rcpt > 0:
                script.tempfail_rcpt -= 1
                return "451 4.3.0 Temporary failure, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        peer, script = self.peer, self.peer.script
        with peer.lock:
            peer.data_seen += 1
            n = peer._session(session)
            if session.ssl is not None:
                peer.tls_sessions.add(n)
            reply = script.data_replies.pop(0) if script.data_replies else None
        if script.delay:
            await asyncio.sleep(script.delay)
        if reply == "drop":
            assert server.transport is not None
            server.transport.close()  # the connection dies before the answer to DATA
            return "250 never seen"
        if reply is not None:
            return reply
        raw = envelope.original_content or envelope.content or b""
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
        mail = Mail(str(envelope.mail_from), list(envelope.rcpt_tos), data, n, time.monotonic())
        with peer.lock:
            peer.mails.append(mail)
            drop = len(peer.mails) in script.drop_after
        if drop:
            transport = server.transport
            assert transport is not None
            server.loop.call_soon(transport.close)  # after the reply: an idle connection dropped
        return "250 2.0.0 OK queued"


class SmtpPeer:
    """An SMTP server on 127.0.0.1 that records the mail it accepts and follows a script."""

    def __init__(
        self,
        script: SmtpScript | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        users: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`host`, `port`: where to listen (default 127.0.0.1 and a free port); 127.0.0.2 is a
        server the SMTP client counts as another machine."""
        self.script = script or SmtpScript()
        self.mails: list[Mail] = []  # accepted, in order
        self.data_seen = 0  # DATA commands, answered or not
        self.rcpt_calls = 0
        self.logins: list[str] = []
        self.auth_attempts: list[str] = []  # the user of every AUTH, refused or not
        self.tls_sessions: set[int] = set()  # sessions that sent DATA over TLS
        self.lock = threading.Lock()
        self._sessions: dict[int, int] = {}
        self.users = users
        self.host = host
        self.port = port or free_port()  # aiosmtpd checks its own readiness: a known port
        kwargs: dict[str, Any] = {"hostname": host, "port": self.port, "ready_timeout": 5.0}
        if implicit_tls:
            kwargs["ssl_context"] = tls
        elif tls is not None:
            kwargs.update(tls_context=tls, require_starttls=True)
        if users is not None:  # AUTH offered; required (and only after STARTTLS) when there is TLS
            kwargs.update(
                authenticator=self._auth,
                auth_required=tls is not None,
                auth_require_tls=tls is not None,
            )
        self.controller = Controller(_Handler(self), **kwargs)

    @property
    def url(self) -> str:
        """The DIGESTBOT_SMTP_URL that reaches it."""
        return f"smtp://{self.host}:{self.port}"

    def __enter__(self) -> Self:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def count(self) -> int:
        """How many messages it accepted so far."""
        with self.lock:
            return len(self.mails)

    def to(self, address: str) -> list[Mail]:
        """The messages accepted for `address` so far."""
        with self.lock:
            return [m for m in self.mails if address in m.rcpt_tos]

    def wait(self, count: int, timeout: float = 10.0) -> list[Mail]:
        """Wait until at least `count` messages were accepted; return them all."""
        wait_for(
            lambda: self.count() >= count,
            timeout,
            f"{count} message(s)",
            lambda: f"got {self.count()}",
            every=0.05,
        )
        with self.lock:
            return list(self.mails)

    def _session(self, session: Session) -> int:
        """The number of a connection, counted from 1 (called under the lock)."""
        return self._sessions.setdefault(id(session), len(self._sessions) + 1)

    def _auth(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self.users is not None:
            user, password = data.login.decode(), data.password.decode()
            with self.lock:
                self.auth_attempts.append(user)
            if self.users.get(user) == password:
                with self.lock:
                    self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)
