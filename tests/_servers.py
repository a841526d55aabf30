"""Real local servers for channel tests: an aiosmtpd SMTP server and a Slack Web API stub.

Both run on loopback in a thread. The Slack stub answers with the real response bodies in
../shared/fixtures/slack/ (the ok body gets its own `ts` per message, so threads can be told apart).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SLACK_FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "slack"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made now (never committed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Received:
    """One message as the SMTP server got it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    session: int

    def parsed(self) -> EmailMessage:
        """The message parsed with the modern email API."""
        msg = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class SmtpBehaviour:
    """What the SMTP server does, set by each test."""

    refuse: dict[str, str] = field(default_factory=dict)  # address → reply to RCPT, always
    tempfail_rcpt: int = 0  # answer the next N RCPTs with 451
    drop_after: set[int] = field(default_factory=set)  # close the connection after accepting message #n (1-based)
    drop_in_data: int = 0  # the next N DATA commands: close the connection without a reply


class SmtpHandler:
    """aiosmtpd handler that records messages and misbehaves on request."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.behaviour = SmtpBehaviour()
        self.rcpt_calls = 0
        self.sessions: dict[int, int] = {}
        self.logins: list[str] = []
        self.tls_sessions: set[int] = set()

    def _session(self, session: Any) -> int:
        return self.sessions.setdefault(id(session), len(self.sessions) + 1)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.rcpt_calls += 1
        self._session(session)
        b = self.behaviour
        if address in b.refuse:
            return b.refuse[address]
        if b.tempfail_rcpt > 0:
            b.tempfail_rcpt -= 1
            return "451 4.3.0 Temporary failure, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        n = self._session(session)
        if session.ssl is not None:
            self.tls_sessions.add(n)
        b = self.behaviour
        if b.drop_in_data > 0:
            b.drop_in_data -= 1
            server.transport.close()
            return "250 OK"  # never reaches the client
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content, n))
        if len(self.messages) in b.drop_after:
            server.loop.call_soon(server.transport.close)  # after the reply: an idle connection dropped
        return "250 2.0.0 OK queued"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 with optional STARTTLS, implicit TLS and AUTH."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, implicit_tls: bool = False,
                 users: dict[str, str] | None = None) -> None:
        self.handler = SmtpHandler()
        self.port = free_port()
        self.users = users
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port, "ready_timeout": 5.0}
        if implicit_tls:
            kwargs["ssl_context"] = tls
        elif tls is not None:
            kwargs["tls_context"] = tls
            kwargs["require_starttls"] = True
        if users is not None:
            kwargs.update(authenticator=self._auth, auth_required=True, auth_require_tls=tls is not None)
        self.controller = Controller(self.handler, **kwargs)

    def _auth(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword) and self.users is not None:
            user, password = data.login.decode(), data.password.decode()
            if self.users.get(user) == password:
                self.handler.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def __enter__(self) -> Self:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Received]:
        """The messages received so far."""
        return self.handler.messages


# --- Slack ---------------------------------------------------------------------------------------

@dataclass
class Reply:
    """One scripted HTTP answer: status, headers and body, or a dropped connection."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json; charset=utf-8"})
    drop: bool = False

    @classmethod
    def fixture(cls, name: str, status: int = 200) -> Reply:
        """A fixture body (`.json`) or a whole recorded response (`.http`)."""
        raw = (SLACK_FIXTURES / name).read_bytes()
        if name.endswith(".http"):
            head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
            lines = head.decode().splitlines()
            headers = dict(line.split(": ", 1) for line in lines[1:])
            headers.pop("connection", None)
            return cls(int(lines[0].split()[1]), body, headers)
        return cls(status, raw)


class SlackServer:
    """A local HTTP server that speaks enough of Slack's Web API (and a webhook) for WebClient."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: dict[str, list[Reply]] = {}  # method (or "webhook") → answers to give first
        self.posted: list[dict[str, Any]] = []  # messages accepted, with their ts and metadata
        self.channels = {"papers": "C0PAPERS01"}
        self._lock = threading.Lock()
        self._ts = 1503435956.000247
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/"
        self.webhook_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/T000/B000/XXXX"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The requests made to one method, in order."""
        return [r for r in self.requests if r["method"] == method]

    def _handle(self, h: BaseHTTPRequestHandler, verb: str) -> None:
        url = urlsplit(h.path)
        method = "webhook" if url.path.startswith("/hooks/") else url.path.rsplit("/", 1)[-1]
        size = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(size) if size else b""
        body: dict[str, Any] = {}
        if raw and "json" in (h.headers.get("content-type") or ""):
            body = json.loads(raw)
        elif raw:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        body.update({k: v[0] for k, v in parse_qs(url.query).items()})
        with self._lock:
            self.requests.append({"method": method, "body": body, "auth": h.headers.get("authorization", "")})
            queue = self.script.get(method) or []
            reply = queue.pop(0) if queue else self._default(method, body)
        if reply.drop:
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.send_response(reply.status)
        for k, v in reply.headers.items():
            h.send_header(k, v)
        h.send_header("content-length", str(len(reply.body)))
        h.end_headers()
        h.wfile.write(reply.body)

    def _default(self, method: str, body: dict[str, Any]) -> Reply:
        if method == "chat.postMessage":
            ok = json.loads((SLACK_FIXTURES / "chat.postMessage__ok__slack_docs_example.json").read_bytes())
            self._ts += 1
            ts = f"{self._ts:.6f}"
            channel = self.channels.get(str(body.get("channel", "")).lstrip("#"), str(body.get("channel", "")))
            ok.update(ts=ts, channel=channel)
            ok["message"]["ts"] = ts
            self.posted.append({"ts": ts, "channel": channel, "text": body.get("text"), "metadata": body.get("metadata"),
                                "thread_ts": body.get("thread_ts")})
            return Reply(200, json.dumps(ok).encode())
        if method == "conversations.history":
            msgs = [{"type": "message", "ts": p["ts"], "text": p["text"], "metadata": p["metadata"]}
                    for p in reversed(self.posted) if p["channel"] == body.get("channel") and not p["thread_ts"]]
            return Reply(200, json.dumps({"ok": True, "messages": msgs, "has_more": False}).encode())
        if method == "conversations.list":
            chans = [{"id": i, "name": n} for n, i in self.channels.items()]
            return Reply(200, json.dumps({"ok": True, "channels": chans, "response_metadata": {"next_cursor": ""}}).encode())
        if method == "webhook":
            self.posted.append({"ts": "", "channel": "webhook", "text": body.get("text"), "metadata": body.get("metadata"),
                                "thread_ts": None})
            return Reply(200, b"ok", {"content-type": "text/html"})
        return Reply(200, json.dumps({"ok": False, "error": "unknown_method"}).encode())
