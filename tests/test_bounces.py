"""Bounces and complaints (bot/bounces): the signed VERP return path, the classification of real-
shaped DSNs and ARF reports, the suspension policy, refusals at send time against a real SMTP
server, `status`/`history`/`resume`, the settings and the migration."""

from __future__ import annotations

import base64
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from peers import SmtpPeer, SmtpScript
from sqlalchemy import create_engine

from bot.bounces.classify import classify
from bot.bounces.policy import Action, Kind, no_such_user, record
from bot.bounces.verp import return_path, subscriber_of
from bot.cli import cli
from bot.config import Settings, parse_settings
from bot.delivery import Deliverer, RetryPolicy, RunReport, run_once
from bot.errors import TokenError
from bot.models import Entry
from bot.roster import load_roster
from bot.store import BounceRow, Store, metadata, migrations
from bot.tokens import sign

DATA = Path(__file__).resolve().parent / "data" / "bounces"
KEY, OTHER_KEY = "test-secret-key", "someone-elses-key"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
FAST = RetryPolicy(attempts=2, base=0.01, cap=0.02)
DEEP = base64.urlsafe_b64encode(b"[" * 2000).rstrip(b"=").decode()  # an unsigned long token


def hostile(token: str = f"{DEEP}.AAAA") -> bytes:
    """A stranger's mail to a return path holding `token` (by default one whose payload, were it
    parsed before its signature is checked, would raise RecursionError)."""
    return (
        "From: someone@attacker.example\r\n"
        f"To: bounces+{token}@lab.example\r\n"
        "Subject: Deeply nested\r\nMessage-ID: <deep@attacker.example>\r\n\r\nhi\r\n"
    ).encode()


def verp_settings(**kw: object) -> Settings:
    # No subscription files unless a test gives some (not the repository's, read from the
    # working folder: a bounce is checked against the address its subscriber's file names).
    kw.setdefault("subscriptions_dir", DATA / "no-subscriptions")
    return Settings(secret_key=KEY, bounce_address="bounces@lab.example", **kw)  # type: ignore[arg-type]


def fixture(name: str, settings: Settings) -> bytes:
    """A message of tests/data/bounces with its return paths signed (README there)."""
    forger = Settings(secret_key=OTHER_KEY, bounce_address="bounces@lab.example")
    text = (DATA / name).read_text()
    text = re.sub(r"@@VERP:(\w+)@@", lambda m: return_path(settings, m.group(1)), text)
    text = re.sub(r"@@FORGED:(\w+)@@", lambda m: return_path(forger, m.group(1)), text)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


# --- the return path ------------------------------------------------------------------------------
def test_the_return_path_is_off_by_default_and_names_its_subscriber_when_set() -> None:
    assert return_path(Settings(secret_key=KEY), "alice") == ""
    s = verp_settings()
    path = return_path(s, "alice")
    assert re.fullmatch(r"bounces\+[a-z2-7]+-[a-z2-7]{16}@lab\.example", path)
    assert subscriber_of(s, path) == "alice"
    assert subscriber_of(s, f"<{path}>") == "alice"  # angle brackets, as in Return-Path


@pytest.mark.parametrize("sid", ["alice", "web-0123456789", "a" * 20])
def test_the_return_path_fits_rfc_5321_and_survives_a_change_of_case(sid: str) -> None:
    s = verp_settings()
    local, _, domain = return_path(s, sid).rpartition("@")
    assert len(local) <= 64, local  # RFC 5321 4.5.3.1.1
    for seen in (f"{local}@{domain}", f"{local.upper()}@{domain}", f"{local.lower()}@{domain}"):
        assert subscriber_of(s, seen) == sid


def test_a_long_id_gets_the_long_token_and_older_long_tokens_still_count() -> None:
    s = verp_settings()
    long_id = "subscriber-with-a-long-file-name-2026"
    path = return_path(s, long_id)
    assert "." in path.split("@")[0] and subscriber_of(s, path) == long_id
    before = "bounces+" + sign(s, "bounce", "alice") + "@lab.example"  # sent before the short form
    assert subscriber_of(s, before) == "alice"


def test_a_return_path_signed_with_a_retired_key_still_counts_while_listed() -> None:
    old = return_path(verp_settings(), "alice")
    rotated = Settings(secret_key=f"new-key, {KEY}", bounce_address="bounces@lab.example")
    assert subscriber_of(rotated, old) == "alice"
    assert return_path(rotated, "alice") != old  # signed with the new key from now on
    with pytest.raises(TokenError):
        subscriber_of(Settings(secret_key="new-key", bounce_address="bounces@lab.example"), old)


@pytest.mark.parametrize(
    "forge",
    [
        lambda s: return_path(
            Settings(secret_key=OTHER_KEY, bounce_address="b@lab.example"), "bob"
        ),
        lambda s: return_path(s, "alice").replace("+", "+x", 1),  # tampered body
        lambda s: return_path(s, "alice").replace("+mfwgsy3f", "+mjxwe", 1),  # alice -> bob
        lambda s: "bounces+" + sign(s, "unsubscribe", "bob") + "@lab.example",
        lambda s: "bounces@lab.example",
        lambda s: f"bounces+{DEEP}.AAAA@lab.example",  # JSON nested past the parser's recursion
    ],
    ids=["other key", "tampered", "another subscriber", "another kind", "no token", "deep"],
)
def test_a_forged_return_path_names_no_one(forge: object) -> None:
    s = verp_settings()
    with pytest.raises(TokenError):
        subscriber_of(s, forge(s))  # type: ignore[operator]


def test_an_email_digest_goes_out_with_its_subscribers_return_path(tmp_path: Path) -> None:
    with SmtpPeer() as smtp:
        plain = world(tmp_path / "a", ["r1"], smtp_url=smtp.url)
        run(plain, NOW)
        settings = world(tmp_path / "b", ["r2"], smtp_url=smtp.url, bounce_address="b@lab.example")
        run(settings, NOW)
    first, second = smtp.mails
    assert first.mail_from == "digest@lab.example"  # off: DIGESTBOT_FROM, as before
    assert second.mail_from.startswith("b+") and subscriber_of(settings, second.mail_from) == "r2"
    assert second.parsed()["From"] == "digest <digest@lab.example>"  # the header is unchanged


# --- classifying what comes back -------------------------------------------------------------------
EXPECTED = {
    "postfix-user-unknown.eml": (Kind.HARD, "alice", "550 5.1.1", "alice.20261201T0700Z"),
    "exim-mailbox-disabled.eml": (Kind.HARD, "bob", "550 5.2.1", "bob.20261201T0700Z"),
    "gmail-address-not-found.eml": (Kind.HARD, "carol", "550 5.1.1", "carol.20261201T0700Z"),
    "generic-delayed.eml": (Kind.SOFT, "dave", "452 4.2.2", "dave.20261201T0700Z"),
    "arf-abuse.eml": (Kind.COMPLAINT, "erin", "abuse", "erin.20261201T0700Z"),
    "out-of-office.eml": (None, "", "", "auto-reply"),
    "stranger.eml": (None, "", "", "stranger"),
    "forged-token.eml": (None, "", "", "did not sign"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_message_is_classified_and_attributed(name: str, store: Store) -> None:
    kind, sid, code, extra = EXPECTED[name]
    got = classify(verp_settings(), store, fixture(name, verp_settings()))
    assert (got.kind, got.subscriber_id, got.code) == (kind, sid, code)
    if kind is None:
        assert extra in got.reason
    else:
        assert got.digest_id == extra and got.message_id.startswith("<")


def test_a_late_bounce_for_an_address_the_subscriber_no_longer_uses_counts_for_no_one(
    store: Store, tmp_path: Path
) -> None:
    """alice's file named alice@uni.example when the digest went out and names another address
    now: the bounce of the old one (its Final-Recipient) must not suspend the new one. Her web
    row or her file naming that address again: it counts, as before."""
    subs = tmp_path / "subscriptions"
    subs.mkdir()
    settings = verp_settings(subscriptions_dir=subs)
    raw = fixture("postfix-user-unknown.eml", settings)  # Final-Recipient: alice@uni.example
    (subs / "alice.toml").write_text('email = "alice@new.example"\n[interests]\nkeywords = ["x"]\n')
    got = classify(settings, store, raw)
    assert got.kind is None
    assert got.reason == "a bounce for alice@uni.example, an address alice no longer uses"
    (subs / "alice.toml").write_text('email = "Alice@Uni.example"\n[interests]\nkeywords = ["x"]\n')
    assert classify(settings, store, raw).kind == Kind.HARD  # the same address, however cased
    (subs / "alice.toml").unlink()
    store.request_web_subscription("alice", "alice@uni.example", "", {}, "0 8 * * *", "UTC", 5)
    assert classify(settings, store, raw).kind == Kind.HARD  # a web subscriber's row


def test_mail_to_a_return_path_with_a_hostile_token_is_left_as_forged(store: Store) -> None:
    got = classify(verp_settings(), store, hostile())
    assert got.kind is None and "did not sign" in got.reason


def test_a_text_bounce_names_the_digest_its_quoted_copy_carries(store: Store) -> None:
    """Exim and qmail quote the original in the text after a marker line, not as a part: its
    headers still name the digest (CRLF or LF); a copy of the body alone names none."""
    exim = fixture("exim-mailbox-disabled.eml", verp_settings())
    marker = b"------ This is a copy of the message, including all the headers. ------"
    assert marker in exim

    def marked(line: bytes) -> bytes:
        return exim.replace(marker, line)

    variants = [
        exim,
        exim.replace(b"\r\n", b"\n"),
        marked(b"------ This is a copy of the message's headers. ------"),
        marked(b"--- Below this line is a copy of the message."),
        marked(b"------ This is a copy of the body of the message, without the headers. ------"),
    ]
    got = [classify(verp_settings(), store, raw) for raw in variants]
    assert [(v.kind, v.subscriber_id) for v in got] == [(Kind.HARD, "bob")] * 5
    assert [v.digest_id for v in got] == ["bob.20261201T0700Z"] * 4 + [""]


def test_a_text_bounce_takes_no_digest_id_from_feed_text_or_another_subscriber(
    store: Store,
) -> None:
    """The quoted copy is anyone's to write (a digest quotes feed titles): only the bounce's own
    first marker line counts, only an id of the subscriber the signed token names is kept, and a
    marker line padded to 200 KB is read in one pass (a backtracking pattern took minutes)."""
    exim = fixture("exim-mailbox-disabled.eml", verp_settings())
    marker = b"------ This is a copy of the message, including all the headers. ------"
    body_only = b"------ This is a copy of the body of the message, without the headers. ------"
    planted = (
        body_only + b"\r\n\r\nA paper title\r\n--- Below this line is a copy of the message.\r\n"
        b"\r\nX-Digestbot-Digest: alice.20261201T0700Z\r\n\r\n"
    )
    other = exim.replace(b"X-Digestbot-Digest: bob.", b"X-Digestbot-Digest: alice.")
    long_line = exim.replace(marker, marker + b" " * 200_000 + b"x")
    got = [classify(verp_settings(), store, raw) for raw in (exim.replace(marker, planted), other)]
    assert [(v.kind, v.subscriber_id, v.digest_id) for v in got] == [(Kind.HARD, "bob", "")] * 2
    assert classify(verp_settings(), store, long_line).digest_id == ""


def test_a_complaint_without_a_return_path_is_attributed_by_the_digests_signed_link(
    store: Store,
) -> None:
    """Without VERP, the report's quoted original names the digest (Message-ID); it counts only
    with that digest's own signed List-Unsubscribe link, as the digest carried it: a Message-ID
    (`<subscriber.slot@domain>`) can be guessed, a signed link cannot."""
    settings = verp_settings()
    raw = fixture("arf-abuse.eml", settings)
    plain = re.sub(rb"<bounces\+[^>]+>", b"<digest@lab.example>", raw)
    got = classify(settings, store, plain)
    assert got.kind is None and "no digest of ours (erin.20261201T0700Z)" in got.reason
    slot = datetime(2026, 12, 1, 7, tzinfo=UTC)
    store.claim("erin", slot, [], "email", now=slot)  # the ledger's digest erin.20261201T0700Z
    got = classify(settings, store, plain)  # a guessable Message-ID alone
    assert got.kind is None and "without that digest's signed unsubscribe link" in got.reason

    def quoting(token: str) -> bytes:
        header = f"List-Unsubscribe: <https://lab.example/unsubscribe/{token}>\r\n".encode()
        return plain.replace(b"X-Digestbot-Digest:", header + b"X-Digestbot-Digest:", 1)

    did = "erin.20261201T0700Z"
    forged = sign(Settings(secret_key=OTHER_KEY), "unsubscribe", "erin", digest_id=did)
    other_digest = sign(settings, "unsubscribe", "erin", digest_id="erin.20261130T0700Z")
    someone_else = sign(settings, "unsubscribe", "frank", digest_id=did)
    for token in (forged, other_digest, someone_else):
        assert classify(settings, store, quoting(token)).kind is None
    got = classify(settings, store, quoting(sign(settings, "unsubscribe", "erin", digest_id=did)))
    assert (got.kind, got.subscriber_id) == (Kind.COMPLAINT, "erin")


# --- the policy ----------------------------------------------------------------------------------
def bounce(sid: str, kind: Kind, code: str, reason: str, at: datetime = NOW) -> BounceRow:
    return BounceRow(sid, kind, code, reason, at)


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        ("550 5.1.1", "Recipient address rejected", True),
        ("5.1.1", "", True),
        ("550", "Requested action not taken: user unknown", True),
        ("550", "No such user here", True),
        ("550 5.2.1", "mailbox disabled", False),
        ("554 5.7.1", "message rejected as spam", False),
        ("", "", False),
    ],
)
def test_no_such_user(code: str, reason: str, expected: bool) -> None:
    assert no_such_user(code, reason) is expected


def test_no_such_user_suspends_at_once(store: Store) -> None:
    act = record(store, Settings(), bounce("alice", Kind.HARD, "550 5.1.1", "user unknown"))
    assert act == Action.SUSPENDED
    assert "no such user: 550 5.1.1 user unknown" in store.suspensions()["alice"].reason


def test_three_hard_bounces_within_thirty_days_suspend_and_older_ones_do_not_count(
    store: Store,
) -> None:
    s = Settings()
    full = ("550 5.2.1", "mailbox disabled")
    assert record(store, s, bounce("bob", Kind.HARD, *full, NOW - timedelta(days=40))) == ""
    assert record(store, s, bounce("bob", Kind.HARD, *full, NOW - timedelta(days=20))) == ""
    assert record(store, s, bounce("bob", Kind.HARD, *full, NOW - timedelta(days=1))) == ""
    assert "bob" not in store.suspensions()  # 2 in the window, the 3rd is 40 days old
    assert record(store, s, bounce("bob", Kind.HARD, *full)) == Action.SUSPENDED
    assert store.suspensions()["bob"].reason.startswith("3 hard bounces in 30 days")
    tight = Settings(bounce_hard_limit=2, bounce_window_days=7)
    assert record(store, tight, bounce("cat", Kind.HARD, *full, NOW - timedelta(days=8))) == ""
    assert record(store, tight, bounce("cat", Kind.HARD, *full)) == ""
    assert record(store, tight, bounce("cat", Kind.HARD, *full)) == Action.SUSPENDED


def test_the_same_bounce_read_twice_counts_once(store: Store) -> None:
    """A bounce read again (the mailbox move failed after it was recorded; a provider's webhook
    sent twice) is the same Message-ID: it does not count towards the limit a second time."""
    s = Settings(bounce_hard_limit=2)
    again = BounceRow("eve", Kind.HARD, "550 5.2.1", "disabled", NOW, message_id="<b1@mx>")
    assert record(store, s, again) == ""
    assert record(store, s, again) == ""
    assert "eve" not in store.suspensions() and len(store.bounces_of("eve")) == 1
    other = BounceRow("eve", Kind.HARD, "550 5.2.1", "disabled", NOW, message_id="<b2@mx>")
    assert record(store, s, other) == Action.SUSPENDED  # a second bounce does count


def test_soft_bounces_never_suspend(store: Store) -> None:
    for _ in range(10):
        assert record(store, Settings(), bounce("dave", Kind.SOFT, "452 4.2.2", "full")) == ""
    assert store.suspensions() == {}
    assert len(store.bounces_of("dave")) == 10


def test_a_complaint_unsubscribes_a_file_subscriber_and_a_web_one(store: Store) -> None:
    store.request_web_subscription("w1", "w@example.org", "", {}, "0 8 * * *", "UTC", 5)
    store.set_web_status("w1", "active")
    for sid in ("erin", "w1"):
        act = record(store, Settings(), bounce(sid, Kind.COMPLAINT, "abuse", "spam"))
        assert act == Action.UNSUBSCRIBED
    assert store.subscriber_statuses() == {"erin": "unsubscribed"}
    web = store.web_subscriber("w1")
    assert web is not None and web.status == "unsubscribed"


# --- refusals at send time, against a real SMTP server ----------------------------------------------
def world(folder: Path, ids: list[str], **kw: object) -> Settings:
    """Subscriber files for `ids` (email <id>@example.org, hourly) and a store with papers."""
    subs = folder / "subscriptions"
    subs.mkdir(parents=True)
    for sid in ids:
        (subs / f"{sid}.toml").write_text(
            f'email = "{sid}@example.org"\nschedule = "0 * * * *"\ntimezone = "UTC"\n'
            '[interests]\nkeywords = ["quantization"]\n'
        )
    settings = Settings(
        database_url=f"sqlite:///{folder / 'db.sqlite'}",
        subscriptions_dir=subs,
        outbox_dir=folder / "outbox",
        from_addr="digest <digest@lab.example>",
        secret_key=KEY,
        **kw,  # type: ignore[arg-type]
    )
    return settings


def run(settings: Settings, now: datetime) -> RunReport:
    """One `run --once` at `now`: a new paper, the roster read again, every due digest sent."""
    with Store(settings.database_url) as store:
        n = int(now.timestamp()) // 3600
        store.upsert_entries([Entry(id=f"arxiv:2612.{n:05d}", title="Quantization", published=now)])
        subs, problems = load_roster(settings, store)
        assert problems == []
        d = Deliverer(settings, store, retry=FAST, sleep=lambda _s: None)
        try:
            return run_once(settings, store, subs, now=now, deliverer=d)
        finally:
            d.close()


def statuses(report: RunReport) -> dict[str, str]:
    return {o.subscriber: str(o.status) for o in report.outcomes}


def test_a_550_in_three_runs_suspends_and_the_fourth_run_does_not_try_it(tmp_path: Path) -> None:
    refuse = {"r2@example.org": "550 5.2.1 mailbox disabled"}
    with SmtpPeer(SmtpScript(refuse=refuse)) as smtp:
        settings = world(tmp_path, ["r1", "r2", "r3"], smtp_url=smtp.url)
        for hour in range(3):
            got = statuses(run(settings, NOW + timedelta(hours=hour)))
            assert got == {"r1": "sent", "r2": "failed", "r3": "sent"}
        with Store(settings.database_url) as store:
            assert "3 hard bounces in 30 days" in store.suspensions()["r2"].reason
            rows = store.bounces_of("r2")
        assert [(b.kind, b.code) for b in rows] == [("hard", "550 5.2.1")] * 3
        assert rows[0].reason == "5.2.1 mailbox disabled" and rows[0].digest_id.startswith("r2.")
        tried = len(smtp.mails)
        assert statuses(run(settings, NOW + timedelta(hours=3))) == {"r1": "sent", "r3": "sent"}
    assert len(smtp.mails) == tried + 2
    assert {m.to[0] for m in smtp.mails} == {"r1@example.org", "r3@example.org"}


def test_a_550_5_1_1_suspends_at_once_and_a_451_never(tmp_path: Path) -> None:
    refuse = {"r1@example.org": "550 5.1.1 user unknown", "r2@example.org": "451 4.2.1 try later"}
    with SmtpPeer(SmtpScript(refuse=refuse)) as smtp:
        settings = world(tmp_path, ["r1", "r2", "r3"], smtp_url=smtp.url)
        got = statuses(run(settings, NOW))
        assert got == {"r1": "failed", "r2": "pending", "r3": "sent"}
        with Store(settings.database_url) as store:
            assert set(store.suspensions()) == {"r1"}
            # two tries of r2's digest, one soft bounce recorded
            assert [b.kind for b in store.bounces_of("r2")] == ["soft"]
        for hour in (1, 2, 3, 4):
            got = statuses(run(settings, NOW + timedelta(hours=hour)))
            assert "r1" not in got and got["r3"] == "sent"
        with Store(settings.database_url) as store:
            assert set(store.suspensions()) == {"r1"}  # soft bounces never suspend
    assert not smtp.to("r1@example.org")


# --- status, history and resume ---------------------------------------------------------------------
def test_status_and_history_show_a_suspension_and_resume_lifts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in list(os.environ):
        if var.startswith(("DIGESTBOT_", "SLACK_")):
            monkeypatch.delenv(var)
    settings = world(tmp_path, ["r1", "r2"])
    with Store(settings.database_url) as store:
        slot = NOW - timedelta(hours=1)
        store.claim("r1", slot, [], "email", now=slot)
        record(store, settings, bounce("r1", Kind.HARD, "550 5.1.1", "user unknown"))
    env = {
        "DIGESTBOT_DATABASE_URL": settings.database_url,
        "DIGESTBOT_SUBSCRIPTIONS": str(settings.subscriptions_dir),
    }
    runner = CliRunner()
    status = runner.invoke(cli, ["status", "--no-items"], env=env)
    assert status.exit_code == 0, status.output
    assert "Suspended by bounces (1):\n  r1  since " in status.output
    assert "no such user: 550 5.1.1 user unknown" in status.output
    history = runner.invoke(cli, ["history", "r1"], env=env)
    assert history.exit_code == 0, history.output
    assert history.output.splitlines()[-1].startswith("r1 is SUSPENDED since ")
    assert "'digestbot resume r1' lifts it" in history.output
    resumed = runner.invoke(cli, ["resume", "r1"], env=env)
    assert resumed.exit_code == 0 and resumed.output.startswith("Resumed r1 (suspended ")
    again = runner.invoke(cli, ["resume", "r1"], env=env)
    assert again.exit_code == 1 and "'r1' is not suspended" in again.output
    after = runner.invoke(cli, ["status"], env=env)
    assert after.exit_code == 0 and "Suspended" not in after.output
    with Store(settings.database_url) as store:
        assert [s.id for s in load_roster(settings, store)[0]] == ["r1", "r2"]


# --- settings --------------------------------------------------------------------------------------
def test_the_bounces_table_and_its_variables() -> None:
    raw = {"bounces": {"address": "b@lab.example", "hard_limit": 5, "window_days": 10}}
    env = {
        "DIGESTBOT_BOUNCE_IMAP_URL": "imaps://b@mail/INBOX",
        "DIGESTBOT_BOUNCE_IMAP_PASSWORD": "pw",
    }
    s, problems = parse_settings(raw, "digestbot.toml", env)
    assert problems == []
    assert (s.bounce_address, s.bounce_hard_limit, s.bounce_window_days) == ("b@lab.example", 5, 10)
    assert (s.bounce_imap_url, s.bounce_imap_password) == ("imaps://b@mail/INBOX", "pw")
    assert "pw" not in repr(s) and "imaps://" not in repr(s)
    bad = {"bounces": {"password": "x", "hard_limit": 0, "window_days": "30"}}
    _, problems = parse_settings(bad, "digestbot.toml", {})
    assert [p.key for p in problems] == [
        "bounces.password",
        "bounces.hard_limit",
        "bounces.window_days",
    ]
    assert "DIGESTBOT_BOUNCE_IMAP_PASSWORD" in str(problems[0])


# --- the migration ---------------------------------------------------------------------------------
def test_revision_0003_upgrades_a_0001_database_to_exactly_the_tables(backend_url: str) -> None:
    engine = create_engine(backend_url)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.alembic_config(connection=conn), "0001")
        Store(backend_url).close()  # upgrades to the newest
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert list(compare_metadata(ctx, metadata)) == []
        with Store(backend_url) as store:
            store.add_bounce(bounce("a", Kind.SOFT, "452 4.2.2", "full"))
            assert store.suspend("a", "why") and not store.suspend("a", "again")
            assert store.bounces_of("a")[0].code == "452 4.2.2" and store.resume("a")
    finally:
        engine.dispose()
