"""The SMTP channel against a real aiosmtpd server on loopback: plain, STARTTLS, TLS, AUTH, faults."""

from __future__ import annotations

import re
import ssl
from dataclasses import replace
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from _digests import SLOT, digest, entry, subscriber
from peers import SmtpPeer

from bot.channels import CHANNELS
from bot.channels.email import Smtp
from bot.channels.outbox import Outbox
from bot.config import Settings
from bot.delivery import Deliverer, Plan, RetryPolicy
from bot.errors import ChannelDownError, ConfigError, PermanentSendError, TransientSendError
from bot.store import Store

BASE = Settings(
    base_url="https://digest.example.org",
    from_addr="Paper Digest <digest@example.org>",
    secret_key="k",
    smtp_rate=0,
)


def settings_for(server: SmtpPeer, scheme: str = "smtp", user: str = "", **kw: object) -> Settings:
    at = f"{user}@" if user else ""
    return replace(BASE, smtp_url=f"{scheme}://{at}127.0.0.1:{server.port}", **kw)  # type: ignore[arg-type]


def tls_server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def test_plain_one_connection_for_many_messages_each_parsed(smtp_server: SmtpPeer) -> None:
    ch = CHANNELS["email"](settings_for(smtp_server))
    subs = [subscriber(id=f"s{i}", email=f"s{i}@example.org", name=f"Süß {i}") for i in range(3)]
    receipts = [ch.send(digest(2, sub=s, did=f"s{i}.20260302T0700Z")) for i, s in enumerate(subs)]
    ch.close()
    assert [r.destination for r in receipts] == [
        "s0@example.org",
        "s1@example.org",
        "s2@example.org",
    ]
    assert receipts[0].detail.startswith("<s0.20260302T0700Z@example.org> 250 2.0.0 OK queued")
    got = smtp_server.mails
    assert [m.session for m in got] == [1, 1, 1]  # one connection
    for i, m in enumerate(got):
        assert m.mail_from == "digest@example.org" and m.rcpt_tos == [f"s{i}@example.org"]
        msg = m.parsed()
        assert msg["Message-ID"] == f"<s{i}.20260302T0700Z@example.org>"
        assert msg["To"] == f"Süß {i} <s{i}@example.org>"
        text, html = (p.get_content() for p in msg.iter_parts())
        assert entry(1).title in text and entry(1).title in html
        assert msg.get_body(("html",)).get_content_type() == "text/html"  # type: ignore[union-attr]


def test_starttls_with_auth(tmp_path: Path, test_cert: tuple[Path, Path]) -> None:
    with SmtpPeer(tls=tls_server_context(*test_cert), users={"bob": "s3cret"}) as server:
        ch = Smtp(settings_for(server, user="bob", smtp_password="s3cret"))
        ch.send(digest(1))
        ch.send(digest(1, did="alice.other"))
        ch.close()
        assert server.logins == ["bob"]  # logged in once, on the one connection
        assert len(server.mails) == 2 and server.tls_sessions == {1}


def test_starttls_wrong_password_says_what_to_check(test_cert: tuple[Path, Path]) -> None:
    with SmtpPeer(tls=tls_server_context(*test_cert), users={"bob": "s3cret"}) as server:
        ch = Smtp(settings_for(server, user="bob", smtp_password="wrong"))
        with pytest.raises(ChannelDownError) as err:  # the channel is down: no digest fails
            ch.send(digest(1))
        assert str(err.value) == (
            f"the SMTP server 127.0.0.1:{server.port} refused the login for 'bob' (535); "
            "check the user in DIGESTBOT_SMTP_URL and DIGESTBOT_SMTP_PASSWORD"
        )
        assert "wrong" not in str(ch.__dict__.get("_conn"))
        assert server.mails == []
        assert server.auth_attempts == ["bob"]  # one AUTH, not one per mechanism offered


def test_implicit_tls(test_cert: tuple[Path, Path]) -> None:
    with SmtpPeer(tls=tls_server_context(*test_cert), implicit_tls=True) as server:
        ch = Smtp(settings_for(server, scheme="smtps"))
        ch.send(digest(1))
        ch.close()
        assert len(server.mails) == 1


def test_an_untrusted_certificate_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peers import make_certificate

    cert, key = make_certificate(tmp_path)  # not made trusted
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
    with (
        SmtpPeer(tls=tls_server_context(cert, key)) as server,
        pytest.raises(ChannelDownError, match="not trusted .*set SSL_CERT_FILE"),
    ):
        Smtp(settings_for(server)).send(digest(1))


@pytest.mark.parametrize(
    "url", ["http://mail.example.org", "mail.example.org:587", "smtp://user:pw@"]
)
def test_bad_smtp_url_is_a_config_error_quoting_the_url_as_written(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        Smtp(replace(BASE, smtp_url=url))
    shown = url.replace(":pw@", ":***@")
    assert str(err.value) == (
        f"DIGESTBOT_SMTP_URL: {shown!r} is not an SMTP URL; write smtp://user@host:587 "
        "(STARTTLS), smtps://host:465 (TLS) or smtp://127.0.0.1:2525 (plain)"
    )


def test_reconnects_when_the_server_drops_an_idle_connection(smtp_server: SmtpPeer) -> None:
    smtp_server.script.drop_after = {1}
    ch = Smtp(settings_for(smtp_server))
    ch.send(digest(1))
    ch.send(digest(1, did="alice.second"))  # the server closed the first connection meanwhile
    ch.close()
    assert [m.session for m in smtp_server.mails] == [1, 2]
    assert ch.connects == 2


# --- through the pipeline's retry loop and the ledger ------------------------------------------------


class Run:
    """A Deliverer over a fresh SQLite ledger with a recorded (not slept) backoff."""

    def __init__(self, tmp_path: Path, settings: Settings, attempts: int = 4) -> None:
        self.store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
        self.store.upsert_entries([entry(i) for i in range(3)])
        self.sleeps: list[float] = []
        self.deliverer = Deliverer(
            settings,
            self.store,
            RetryPolicy(attempts=attempts, base=1.0, cap=30.0),
            sleep=self.sleeps.append,
        )

    def deliver(self, sub_id: str, email: str) -> object:
        plan = Plan(subscriber(id=sub_id, email=email), SLOT, digest(3).items)
        return self.deliverer.deliver(plan)

    def close(self) -> None:
        self.deliverer.close()
        self.store.close()


def test_4xx_is_retried_with_bounded_jittered_backoff_then_sent(
    tmp_path: Path, smtp_server: SmtpPeer
) -> None:
    smtp_server.script.tempfail_rcpt = 2
    run = Run(tmp_path, settings_for(smtp_server))
    out = run.deliver("alice", "alice@example.org")
    run.close()
    assert out.status == "sent"  # type: ignore[attr-defined]
    assert smtp_server.rcpt_calls == 3 and len(smtp_server.mails) == 1
    assert len(run.sleeps) == 2 and 0 <= run.sleeps[0] <= 1.0 and 0 <= run.sleeps[1] <= 2.0


def test_4xx_that_persists_leaves_the_digest_pending(tmp_path: Path, smtp_server: SmtpPeer) -> None:
    smtp_server.script.tempfail_rcpt = 99
    run = Run(tmp_path, settings_for(smtp_server))
    out = run.deliver("alice", "alice@example.org")
    row = run.store.get_digest(out.digest_id)  # type: ignore[attr-defined]
    run.close()
    assert out.status == "pending" and "451 4.3.0" in out.reason  # type: ignore[attr-defined]
    assert row is not None and row.status == "pending" and row.attempts == 4
    assert smtp_server.rcpt_calls == 4 and len(run.sleeps) == 3


def test_a_connection_dropped_during_data_is_transient_and_retried(
    tmp_path: Path, smtp_server: SmtpPeer
) -> None:
    smtp_server.script.data_replies = ["drop"]
    ch = Smtp(settings_for(smtp_server))
    with pytest.raises(TransientSendError, match="lost while sending to alice@example.org"):
        ch.send(digest(1))
    ch.send(digest(1))
    ch.close()
    assert len(smtp_server.mails) == 1 and ch.connects == 2


def test_a_5xx_recipient_fails_that_digest_only(tmp_path: Path, smtp_server: SmtpPeer) -> None:
    smtp_server.script.refuse["bad@example.org"] = "550 5.1.1 <bad@example.org>: no such user"
    run = Run(tmp_path, settings_for(smtp_server))
    outs = [
        run.deliver("a", "a@example.org"),
        run.deliver("bad", "bad@example.org"),
        run.deliver("c", "c@example.org"),
    ]
    bad = run.store.get_digest(outs[1].digest_id)  # type: ignore[attr-defined]
    freed = run.store.delivered(["bad"])
    run.close()
    assert [o.status for o in outs] == ["sent", "failed", "sent"]  # type: ignore[attr-defined]
    assert outs[1].reason == (
        "SMTP refused the recipient bad@example.org: 550 5.1.1 <bad@example.org>: no such user; "  # type: ignore[attr-defined]
        "check the email address in the subscription file"
    )
    assert bad is not None and bad.status == "failed" and bad.attempts == 1  # not retried
    assert freed == {"bad": set()}  # its entries may go in a later digest
    assert run.sleeps == []
    assert [m.rcpt_tos for m in smtp_server.mails] == [["a@example.org"], ["c@example.org"]]
    assert {m.session for m in smtp_server.mails} == {1}  # the refusal did not cost the connection


def test_rate_limit_holds_across_channel_instances(
    smtp_server: SmtpPeer, send_clock: list[float]
) -> None:
    s = replace(settings_for(smtp_server), smtp_rate=2.0)
    a, b = Smtp(s), Smtp(s)
    for i in range(3):
        a.send(digest(1, did=f"a{i}"))
        b.send(digest(1, did=f"b{i}"))
    a.close()
    b.close()
    assert len(smtp_server.mails) == 6
    assert sum(send_clock) == pytest.approx(2.5)  # 6 messages at 2 a second: 5 gaps of 0.5 s
    assert all(x <= 0.5 + 1e-9 for x in send_clock)


def test_outbox_writes_the_bytes_smtp_carries(tmp_path: Path, smtp_server: SmtpPeer) -> None:
    s = replace(settings_for(smtp_server), outbox_dir=tmp_path / "outbox")
    d = digest(3)
    ch = Smtp(s)
    ch.send(d)
    ch.close()
    Outbox(s).send(d)
    wire = smtp_server.mails[0].data
    filed = (tmp_path / "outbox" / "alice" / f"{d.id}.eml").read_bytes()

    def norm(raw: bytes) -> bytes:  # the send time and the MIME boundary differ between two builds
        raw = re.sub(rb"Date: [^\r]+", b"Date: -", raw)
        boundary = re.search(rb'boundary="([^"]+)"', raw).group(1)  # type: ignore[union-attr]
        return raw.replace(boundary, b"BOUNDARY")

    assert norm(filed) == norm(wire)
    assert (
        message_from_bytes(filed, policy=policy.default)["Message-ID"]
        == "<alice.20260302T0700Z@example.org>"
    )


def test_a_bad_sender_is_a_config_error_and_a_bad_recipient_fails_only_its_digest(
    smtp_server: SmtpPeer,
) -> None:
    with pytest.raises(
        ConfigError,
        match=r"DIGESTBOT_FROM: 'nobody' is not an address; write e.g. 'Lab digest <digest@example.org>'",
    ):
        Smtp(replace(settings_for(smtp_server), from_addr="nobody"))
    ch = Smtp(settings_for(smtp_server))
    with pytest.raises(
        PermanentSendError,
        match=r"the address 'jörg@exämple.org' of alice is not a plain ASCII address",
    ):
        ch.send(digest(1, sub=subscriber(email="jörg@exämple.org")))
    ch.send(digest(1))
    ch.close()
    assert len(smtp_server.mails) == 1


def test_the_web_mailer_connects_through_the_same_smtp_code(test_cert: tuple[Path, Path]) -> None:
    """One SMTP client: the confirmation mails get the channel's STARTTLS, login and URL rules."""
    from bot.web import mailer

    with SmtpPeer(tls=tls_server_context(*test_cert), users={"bob": "s3cret"}) as server:
        s = settings_for(server, user="bob", smtp_password="s3cret")
        mailer.send(s, mailer.build(s, "carol@example.org", "Confirm", "Open the link."))
        # STARTTLS on loopback when offered, as the channel does (the old mailer sent in clear here).
        assert server.tls_sessions == {1} and server.logins == ["bob"]
        assert server.mails[0].rcpt_tos == ["carol@example.org"]
        bad = replace(s, smtp_password="wrong")
        with pytest.raises(
            PermanentSendError, match=r"^the SMTP server 127.0.0.1:\d+ refused the login for 'bob'"
        ):
            mailer.send(bad, mailer.build(bad, "carol@example.org", "Confirm", "Open the link."))
    with pytest.raises(
        ConfigError, match=r"DIGESTBOT_SMTP_URL: 'http://mail.example.org' is not an SMTP URL"
    ):
        s = replace(BASE, smtp_url="http://mail.example.org")
        mailer.send(s, mailer.build(s, "carol@example.org", "Confirm", "Open the link."))


# --- credentials never cross the network unencrypted (issue 17.4) --------------------------------
# The server listens on 127.0.0.2: still this machine, but not one of the names the client counts
# as loopback (127.0.0.1, ::1, localhost), so the client treats it as another host. Port 25 is
# the case the old client let through (it needs root to listen on; skipped otherwise).


def remote_peer(port: int, users: dict[str, str] | None) -> SmtpPeer:
    peer = SmtpPeer(users=users, host="127.0.0.2", port=port)
    try:
        peer.__enter__()
    except (OSError, RuntimeError) as e:
        pytest.skip(f"cannot listen on 127.0.0.2:{port or 'a free port'} ({e})")
    return peer


@pytest.mark.parametrize("port", [25, 0])
def test_a_password_never_goes_in_clear_to_another_host(port: int) -> None:
    peer = remote_peer(port, {"bob": "s3cret"})
    try:
        s = replace(BASE, smtp_url=f"smtp://bob@127.0.0.2:{peer.port}", smtp_password="s3cret")
        with pytest.raises(ChannelDownError) as err:
            Smtp(s).send(digest(1))
        assert str(err.value) == (
            f"the SMTP server 127.0.0.2:{peer.port} does not offer STARTTLS, and digestbot never "
            "sends the password of 'bob' unencrypted over the network; use smtps://host:465, "
            "or a server that offers STARTTLS"
        )
        assert peer.logins == [] and peer.mails == []
    finally:
        peer.__exit__()


def test_port_25_without_a_login_still_delivers_in_clear() -> None:
    """Server to server on port 25 with no credentials: nothing secret crosses, as MTAs do."""
    peer = remote_peer(25, None)
    try:
        ch = Smtp(replace(BASE, smtp_url="smtp://127.0.0.2:25"))
        ch.send(digest(1))
        ch.close()
        assert len(peer.mails) == 1 and peer.tls_sessions == set()
    finally:
        peer.__exit__()


def test_a_login_on_this_machine_without_starttls_is_allowed() -> None:
    with SmtpPeer(users={"bob": "s3cret"}) as server:
        ch = Smtp(settings_for(server, user="bob", smtp_password="s3cret"))
        ch.send(digest(1))
        ch.close()
        assert server.logins == ["bob"] and len(server.mails) == 1


def test_mail_to_another_host_is_refused_without_a_secret_key() -> None:
    peer = remote_peer(0, None)
    try:
        s = replace(BASE, smtp_url=f"smtp://127.0.0.2:{peer.port}", secret_key="")
        with pytest.raises(ConfigError, match=r"^DIGESTBOT_SECRET_KEY: unset, so the feedback"):
            Smtp(s)
        assert peer.mails == []
    finally:
        peer.__exit__()
