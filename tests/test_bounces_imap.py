"""`digestbot bounces` against a real IMAP server: Dovecot from Debian, started by the test on a
free loopback port (a config file of its own, a passwd-file user, a maildir; no system service).
Skipped with the reason where /usr/sbin/dovecot is missing (.ci/apt-packages.txt installs it)."""

from __future__ import annotations

import getpass
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from imapclient import IMAPClient
from peers import free_port, wait_for
from test_bounces import EXPECTED, KEY, fixture, hostile, verp_settings

from bot.bounces import mailbox
from bot.bounces.mailbox import MailboxError, check_mailbox
from bot.bounces.policy import Kind
from bot.cli import cli
from bot.config import Settings
from bot.errors import StoreError
from bot.store import BounceRow, Store

DOVECOT = Path("/usr/sbin/dovecot")
USER, PASSWORD = "bounces", "imap-Pa55-w0rd-never-logged"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not DOVECOT.exists(),
        reason="Dovecot is not installed (/usr/sbin/dovecot missing): apt-get install dovecot-imapd",
    ),
]

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = digestbot-test-{port}
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = {uid}
default_internal_user = {internal}
default_login_user = {login}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
"""


@dataclass
class Imap:
    """A running Dovecot and how to reach its one user."""

    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"imap://{USER}@127.0.0.1:{self.port}/INBOX"

    def client(self) -> IMAPClient:
        c = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=10)
        c.login(USER, PASSWORD)
        return c

    def subjects(self, folder: str) -> list[str]:
        c = self.client()
        try:
            c.select_folder(folder, readonly=True)
            uids = c.search("ALL")
            got = c.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "FLAGS"]) if uids else {}
            assert all(b"\\Seen" not in d[b"FLAGS"] for d in got.values())  # left unread
            return sorted(
                bytes(d[b"BODY[HEADER.FIELDS (SUBJECT)]"])
                .decode()
                .strip()
                .removeprefix("Subject: ")
                for d in got.values()
            )
        finally:
            c.logout()


@pytest.fixture
def dovecot() -> Iterator[Imap]:
    # Its own folder under /tmp (short socket paths; the login process must reach it), not tmp_path.
    root = Path(tempfile.mkdtemp(prefix="dv"))
    root.chmod(0o755)
    port = free_port()
    if os.geteuid() == 0:  # Dovecot refuses root for logins and mail: its Debian users then
        login, internal, mail = "dovenull", "dovecot", pwd.getpwnam("dovecot")
    else:
        login = internal = getpass.getuser()
        mail = pwd.getpwuid(os.getuid())
    for sub in ("mail", "home"):
        (root / sub).mkdir()
        os.chown(root / sub, mail.pw_uid, mail.pw_gid)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    conf = root / "dovecot.conf"
    conf.write_text(
        CONFIG.format(
            root=root,
            port=port,
            uid=mail.pw_uid,
            gid=mail.pw_gid,
            login=login,
            internal=internal,
        )
    )
    out = root / "dovecot.out"
    with out.open("wb") as sink:  # Popen keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(conf)], stdout=sink, stderr=subprocess.STDOUT
        )

    def up() -> bool:
        assert proc.poll() is None, out.read_text()
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(up, 15, f"Dovecot on 127.0.0.1:{port}", lambda: _log(root))
        yield Imap(port, root)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def _log(root: Path) -> str:
    log = root / "dovecot.log"
    return log.read_text() if log.exists() else ""


def deliver(imap: Imap, settings: Settings, names: list[str]) -> None:
    """Put the fixtures into INBOX as a mail server would (IMAP APPEND, unread)."""
    c = imap.client()
    try:
        for name in names:
            c.append("INBOX", fixture(name, settings))
    finally:
        c.logout()


def mailbox_settings(imap: Imap, tmp_path: Path) -> Settings:
    return verp_settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        bounce_imap_url=imap.url,
        bounce_imap_password=PASSWORD,
    )


def test_the_mailbox_run_suspends_unsubscribes_and_leaves_what_it_cannot_attribute(
    dovecot: Imap, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # imapclient's protocol log too
    settings = mailbox_settings(dovecot, tmp_path)
    deliver(dovecot, settings, sorted(EXPECTED))
    with Store(settings.database_url) as store:
        for days in (3, 2):  # bob bounced twice before: the Exim bounce is his third
            at = datetime.now(UTC) - timedelta(days=days)
            store.add_bounce(BounceRow("bob", Kind.HARD, "550 5.2.1", "mailbox disabled", at))
        report = check_mailbox(settings, store)
        suspended = store.suspensions()
        assert set(suspended) == {"alice", "bob", "carol"}
        assert "no such user" in suspended["alice"].reason
        assert "no such user" in suspended["carol"].reason
        assert suspended["bob"].reason.startswith("3 hard bounces in 30 days")
        assert store.subscriber_statuses() == {"erin": "unsubscribed"}
        assert [(b.kind, b.code) for b in store.bounces_of("dave")] == [("soft", "452 4.2.2")]
        assert store.bounces_of("frank") == []
    assert sorted(h.verdict.subscriber_id for h in report.recorded) == [
        "alice",
        "bob",
        "carol",
        "dave",
        "erin",
    ]
    reasons = " | ".join(h.verdict.reason for h in report.left)
    assert len(report.left) == 3
    assert "auto-reply" in reasons and "did not sign" in reasons and "stranger" in reasons
    assert dovecot.subjects("INBOX") == [
        "Automatic reply: Your research digest: 5 new papers",
        "How do I subscribe?",
        "Undelivered Mail Returned to Sender",  # the forged one
    ]
    assert len(dovecot.subjects(settings.bounce_processed_folder)) == 5
    assert PASSWORD not in caplog.text and "LOGIN" in caplog.text  # the login was logged, redacted
    # a second look records nothing again and leaves the same three
    with Store(settings.database_url) as store:
        again = check_mailbox(settings, store)
        assert (len(again.recorded), len(again.left)) == (0, 3)
        assert len(store.bounces_of("alice")) == 1


def test_the_bounces_command_reports_and_a_wrong_password_is_told_without_it(
    dovecot: Imap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in list(os.environ):
        if var.startswith(("DIGESTBOT_", "SLACK_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)  # no digestbot.toml here: not the repository's example subscribers
    settings = mailbox_settings(dovecot, tmp_path)
    deliver(dovecot, settings, ["postfix-user-unknown.eml", "stranger.eml"])
    env = {
        "DIGESTBOT_DATABASE_URL": settings.database_url,
        "DIGESTBOT_SECRET_KEY": KEY,
        "DIGESTBOT_BOUNCE_IMAP_URL": dovecot.url,
        "DIGESTBOT_BOUNCE_IMAP_PASSWORD": PASSWORD,
    }
    done = CliRunner().invoke(cli, ["-vv", "bounces"], env=env)
    assert done.exit_code == 0, done.output
    assert "1 message recorded and moved to 'digestbot-processed', 1 left." in done.output
    assert "  hard alice 550 5.1.1 " in done.output and ": suspended" in done.output
    assert "left message " in done.output and "a stranger's mail" in done.output
    assert PASSWORD not in done.output
    wrong = CliRunner().invoke(
        cli, ["bounces"], env={**env, "DIGESTBOT_BOUNCE_IMAP_PASSWORD": "nope"}
    )
    assert wrong.exit_code == 1
    assert "the IMAP server refused the login for 'bounces'" in wrong.output
    assert "nope" not in wrong.output
    with_password = {**env, "DIGESTBOT_BOUNCE_IMAP_URL": f"imap://{USER}:{PASSWORD}@127.0.0.1/"}
    refused = CliRunner().invoke(cli, ["bounces"], env=with_password)
    assert refused.exit_code == 1 and "holds a password" in refused.output
    assert PASSWORD not in refused.output
    closed = Settings(bounce_imap_url=f"imap://u@127.0.0.1:{free_port()}/")
    with Store(settings.database_url) as store, pytest.raises(MailboxError, match="cannot connect"):
        check_mailbox(closed, store)


ESCAPING_REPORT = b"""From: abuse@isp.example
To: bounces@example.org
Subject: complaint
Message-ID: <r1@isp.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B"

--B
Content-Type: text/plain

spam
--B
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: x
Version: 1

--B
Content-Type: message/rfc822

From: digest@example.org
X-Digestbot-Digest: x\x1b]0;PWNED\x07\x1b[31mred
Message-ID: <zz@example.org>
Subject: hi

body
--B--
""".replace(b"\n", b"\r\n")


def test_the_bounces_command_prints_no_control_character_from_a_strangers_mail(
    dovecot: Imap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A complaint quoting a header with terminal escapes (a window title, colours): what
    `digestbot bounces` prints of it is plain text (anyone may mail the bounce address)."""
    for var in list(os.environ):
        if var.startswith(("DIGESTBOT_", "SLACK_")):
            monkeypatch.delenv(var)
    settings = mailbox_settings(dovecot, tmp_path)
    c = dovecot.client()
    try:
        c.append("INBOX", ESCAPING_REPORT)
    finally:
        c.logout()
    env = {
        "DIGESTBOT_DATABASE_URL": settings.database_url,
        "DIGESTBOT_SECRET_KEY": KEY,
        "DIGESTBOT_BOUNCE_IMAP_URL": dovecot.url,
        "DIGESTBOT_BOUNCE_IMAP_PASSWORD": PASSWORD,
    }
    done = CliRunner().invoke(cli, ["bounces"], env=env, color=True)
    assert done.exit_code == 0, done.output
    assert "left message " in done.output and "PWNED" in done.output
    assert "\x1b" not in done.output and "\x07" not in done.output


def test_a_message_that_cannot_be_classified_is_left_and_the_others_recorded_once(
    dovecot: Imap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = mailbox_settings(dovecot, tmp_path)
    c = dovecot.client()
    try:
        c.append("INBOX", fixture("postfix-user-unknown.eml", settings))
        c.append("INBOX", hostile())  # a return path holding JSON nested 2000 deep
        c.append("INBOX", b"Subject: breaks a parser\r\n\r\nboom\r\n")
        c.append("INBOX", fixture("generic-delayed.eml", settings))
    finally:
        c.logout()
    real = mailbox.classify

    def fragile(s: Settings, store: Store, raw: bytes) -> object:
        if b"breaks a parser" in raw:  # a message some parser or detector chokes on
            raise RecursionError("maximum recursion depth exceeded")
        return real(s, store, raw)

    monkeypatch.setattr(mailbox, "classify", fragile)
    with Store(settings.database_url) as store:
        for _look in range(3):  # the job looks again every few minutes
            report = check_mailbox(settings, store)
        assert [(b.kind, b.code) for b in store.bounces_of("alice")] == [("hard", "550 5.1.1")]
        assert [(b.kind, b.code) for b in store.bounces_of("dave")] == [("soft", "452 4.2.2")]
    assert report.recorded == []  # nothing again at the second and third look
    reasons = sorted(h.verdict.reason for h in report.left)
    assert len(reasons) == 2 and "did not sign" in reasons[0]
    assert reasons[1] == "could not be classified (RecursionError); see the log"
    assert dovecot.subjects("INBOX") == ["Deeply nested", "breaks a parser"]
    assert len(dovecot.subjects(settings.bounce_processed_folder)) == 2


def test_a_failure_mid_batch_never_records_a_bounce_twice(
    dovecot: Imap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = mailbox_settings(dovecot, tmp_path)
    deliver(dovecot, settings, ["exim-mailbox-disabled.eml", "generic-delayed.eml"])
    real = mailbox.record

    def database_down(store: Store, s: Settings, row: BounceRow) -> object:
        if row.subscriber_id == "dave":
            raise StoreError("the database went away")
        return real(store, s, row)

    monkeypatch.setattr(mailbox, "record", database_down)
    with Store(settings.database_url) as store:
        with pytest.raises(StoreError):
            check_mailbox(settings, store)
        assert len(store.bounces_of("bob")) == 1  # recorded, and moved at once
        assert dovecot.subjects("INBOX") == ["Delivery delayed: Your research digest"]
        monkeypatch.setattr(mailbox, "record", real)
        again = check_mailbox(settings, store)
        assert [h.verdict.subscriber_id for h in again.recorded] == ["dave"]
        assert len(store.bounces_of("bob")) == 1  # not twice
        assert len(store.bounces_of("dave")) == 1
    assert dovecot.subjects("INBOX") == []
