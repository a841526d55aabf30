"""`digestbot bounces`: read the bounce mailbox over IMAP, record what came back, move it away.

DIGESTBOT_BOUNCE_IMAP_URL names the mailbox (imaps://user@host/INBOX; imap:// uses STARTTLS,
except on loopback), DIGESTBOT_BOUNCE_IMAP_PASSWORD the password (never in a log or a message).
Each message is classified (`classify`); a bounce or complaint is recorded (`policy`) and moved
to [bounces] processed_folder as soon as it is recorded; anything else stays where it is, unread,
and is reported (a message that cannot be classified at all too, with the error in the log).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from ..config import Settings
from ..errors import BotError, ConfigError
from ..store import BounceRow, Store
from .classify import Verdict, classify
from .policy import Action, record

log = logging.getLogger("bot.bounces")

TIMEOUT = 30.0  # seconds for connecting and each IMAP reply
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
KEY = "DIGESTBOT_BOUNCE_IMAP_URL"


class MailboxError(BotError):
    """The bounce mailbox could not be read."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    """Where DIGESTBOT_BOUNCE_IMAP_URL points."""

    host: str
    port: int
    tls: bool  # imaps://: TLS from the start
    user: str
    folder: str

    @classmethod
    def from_url(cls, url: str) -> Mailbox:
        """The mailbox of an imap(s)://user@host[:port]/FOLDER URL; `ConfigError` with the fix."""
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
            raise ConfigError(
                "not an IMAP URL with a user; write imaps://user@host/INBOX (TLS) or "
                "imap://user@host:143/INBOX (STARTTLS)",
                key=KEY,
            )
        if parts.password is not None:
            raise ConfigError(
                "the URL holds a password; remove it and set DIGESTBOT_BOUNCE_IMAP_PASSWORD",
                key=KEY,
            )
        tls = parts.scheme == "imaps"
        try:
            port = parts.port or (993 if tls else 143)
        except ValueError as e:
            raise ConfigError(f"bad port ({e}); write e.g. imaps://user@host:993/INBOX", key=KEY)
        folder = unquote(parts.path.strip("/")) or "INBOX"
        return cls(parts.hostname, port, tls, unquote(parts.username), folder)

    @property
    def where(self) -> str:
        """user@host:port/folder, for messages (no password is ever part of it)."""
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"


@dataclass(frozen=True, slots=True)
class Handled:
    """One message of the mailbox and what became of it."""

    uid: int
    verdict: Verdict
    action: Action = Action.NONE


@dataclass
class MailboxReport:
    """What `check_mailbox` did: the messages recorded (and moved) and the ones left, with why."""

    recorded: list[Handled] = field(default_factory=list)
    left: list[Handled] = field(default_factory=list)


@contextmanager
def _connect(box: Mailbox, password: str) -> Iterator[IMAPClient]:
    """A logged-in client on the mailbox's folder; failures as `MailboxError`s with the fix."""
    context = ssl.create_default_context()  # the system's CAs, or SSL_CERT_FILE's
    try:
        client = IMAPClient(box.host, box.port, ssl=box.tls, ssl_context=context, timeout=TIMEOUT)
    except (OSError, IMAPClientError) as e:
        raise MailboxError(f"cannot connect to the bounce mailbox {box.where} ({e}); check {KEY}")
    try:
        if not box.tls and box.host not in LOOPBACK:
            client.starttls(context)
        client.login(box.user, password)
        client.select_folder(box.folder)
        yield client
    except LoginError as e:
        raise MailboxError(
            f"the IMAP server refused the login for {box.user!r}; check {KEY} and "
            "DIGESTBOT_BOUNCE_IMAP_PASSWORD"
        ) from e
    except (OSError, IMAPClientError) as e:
        raise MailboxError(f"the bounce mailbox {box.where} failed: {e}; check {KEY}") from e
    finally:
        try:
            client.logout()
        except (OSError, IMAPClientError):
            pass


def check_mailbox(settings: Settings, store: Store, now: datetime | None = None) -> MailboxReport:
    """Classify every message of the bounce mailbox, record bounces and complaints, move those to
    the processed folder; leave (unread) and report the others.

    Each message is moved as soon as it is recorded, so a failure later in the batch (the
    database, the connection) never has a bounce recorded twice at the next look; a message that
    cannot be classified at all is left with the reason, the others still handled.
    """
    if not settings.bounce_imap_url:
        raise ConfigError("no bounce mailbox is configured; set it to read bounces", key=KEY)
    box = Mailbox.from_url(settings.bounce_imap_url)
    report = MailboxReport()
    folder = settings.bounce_processed_folder
    with _connect(box, settings.bounce_imap_password) as client:
        uids = sorted(client.search("ALL"))
        for uid, data in client.fetch(uids, ["BODY.PEEK[]"]).items() if uids else []:
            verdict = _classify(settings, store, uid, bytes(data[b"BODY[]"]))
            if verdict.kind is None:
                report.left.append(Handled(uid, verdict))
                log.info("bounce mailbox: message %s left: %s", uid, verdict.reason)
                continue
            row = BounceRow(
                verdict.subscriber_id,
                verdict.kind,
                verdict.code,
                verdict.reason,
                now or datetime.now(UTC),
                verdict.digest_id,
                verdict.message_id,
            )
            action = record(store, settings, row)
            if not report.recorded and not client.folder_exists(folder):
                client.create_folder(folder)
            _move(client, [uid], folder)
            report.recorded.append(Handled(uid, verdict, action))
    return report


def _classify(settings: Settings, store: Store, uid: int, raw: bytes) -> Verdict:
    """`classify`, or a verdict leaving the message when classifying it failed: a message no
    parser or detector copes with (anyone can send one) must not stop the rest of the mailbox."""
    try:
        return classify(settings, store, raw)
    except BotError:
        raise  # the store or the settings: every message would fail alike
    except Exception as e:  # untrusted input through third-party parsers (email, flufl.bounce)
        log.exception("bounce mailbox: message %s could not be classified", uid)
        return Verdict(None, reason=f"could not be classified ({type(e).__name__}); see the log")


def _move(client: IMAPClient, uids: list[int], folder: str) -> None:
    """Move recorded messages to `folder` (which exists): MOVE, else COPY + delete."""
    if client.has_capability("MOVE"):
        client.move(uids, folder)
    else:
        client.copy(uids, folder)
        client.delete_messages(uids)
        client.uid_expunge(uids) if client.has_capability("UIDPLUS") else client.expunge()
