"""What happens when a digest is sent and cannot go where it should: the outbox only when the config
chooses it, a channel that is not set up (the digest waits), a template mistake (named, retried once
fixed), an SMTP server that is down (the rest of the run waits, in seconds)."""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from _digests import digest
from click.testing import CliRunner, Result
from peers import SmtpPeer
from test_pipeline import reader, run, world

from bot.channels import channel_for, not_ready
from bot.cli import cli
from bot.config import Settings, load_settings
from bot.delivery import RetryPolicy
from bot.errors import TemplateError
from bot.models import Subscriber
from bot.render import render_email, slack_messages
from bot.store import Store

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # the example subscriber's slot: 08:00 UTC that day
SLOT = "20261128T0800Z"
HOW = 'set it, or write outbox_dir = "outbox" in digestbot.toml'


_RUNS = itertools.count()


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """`digestbot ARGS` on the example's day, each call a minute after the one before (as cron)."""
    with time_machine.travel(NOW + timedelta(minutes=next(_RUNS)), tick=True):
        return CliRunner().invoke(cli, list(args), env=env, prog_name="digestbot")


def ledger(here: Path) -> Iterator[tuple[str, str, str]]:
    store = Store(f"sqlite:///{here / 'digestbot.db'}")
    try:
        for r in store.digests_with_status("pending", "sent", "failed"):
            yield r.id, r.status, r.reason
    finally:
        store.close()


# --- 15.2: the outbox is chosen, never a silent fallback ------------------------------------------


def test_without_smtp_and_outbox_dir_a_quiet_run_says_so_and_the_digest_is_sent_once_smtp_is_set(
    here: Path, smtp_server: SmtpPeer
) -> None:
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    first = invoke("-q", "run", "--once")
    assert first.exit_code == 1
    assert first.output == (
        f"example: PENDING: not sent: email needs DIGESTBOT_SMTP_URL, which is not set; {HOW} "
        "to have such digests written to files instead; the digest waits for the next run\n"
    )
    assert not (here / "outbox").exists()
    assert list(ledger(here)) == [
        (f"example.{SLOT}", "pending", first.output.split("PENDING: ")[1].strip())
    ]
    again = invoke("-q", "run", "--once")  # still not set up: still waiting, still said
    assert again.exit_code == 1
    assert again.output == (
        f"example: re-sent pending digest example.{SLOT}: pending "
        f"({first.output.split('PENDING: ')[1].strip()})\n"
    )

    fixed = invoke("-q", "run", "--once", env={"DIGESTBOT_SMTP_URL": smtp_server.url})
    assert (fixed.exit_code, fixed.output) == (0, "")
    assert [m.digest for m in smtp_server.mails] == [f"example.{SLOT}"]
    assert list(ledger(here)) == [(f"example.{SLOT}", "sent", "")]
    assert invoke("-q", "run", "--once", env={"DIGESTBOT_SMTP_URL": smtp_server.url}).exit_code == 0
    assert smtp_server.count() == 1


def test_outbox_dir_in_the_config_chooses_the_outbox_and_every_quiet_run_says_how_many(
    here: Path,
) -> None:
    assert CliRunner().invoke(cli, ["init", "--outbox"]).exit_code == 0
    done = invoke("-q", "run", "--once")
    assert done.exit_code == 0, done.output
    said = re.fullmatch(
        r"1 digest went to the outbox \((.+)\), not to anyone: outbox_dir in digestbot.toml "
        r"chooses it while email or Slack is not configured, and they will not be sent later\n",
        done.output,
    )
    assert said and Path(said[1]).resolve() == here / "outbox", done.output
    assert (here / "outbox" / "example" / f"example.{SLOT}.eml").is_file()


def test_digestbot_outbox_moves_the_folder_and_chooses_nothing(here: Path) -> None:
    """The deploy recipes set DIGESTBOT_OUTBOX to their state folder: that alone sends nothing
    to the outbox; with outbox_dir in the config, the folder is the variable's."""
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    env = {"DIGESTBOT_OUTBOX": str(here / "state" / "outbox")}
    done = invoke("-q", "run", "--once", env=env)
    assert done.exit_code == 1 and "email needs DIGESTBOT_SMTP_URL" in done.output
    assert not (here / "state").exists()
    config = here / "digestbot.toml"
    config.write_text(
        config.read_text().replace('# outbox_dir = "outbox"', 'outbox_dir = "outbox"')
    )
    done = invoke("-q", "run", "--once", env=env)
    assert done.exit_code == 0, done.output
    assert list((here / "state" / "outbox" / "example").glob("example.*.eml"))
    assert not (here / "outbox").exists()


def test_a_slack_subscriber_without_a_token_waits_and_says_what_to_set(here: Path) -> None:
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    sub = here / "subscriptions" / "example.toml"
    sub.write_text(
        sub.read_text().replace('email = "you@example.org"', 'slack_channel = "#papers"')
    )
    done = invoke("-q", "run", "--once")
    assert done.exit_code == 1
    assert (
        "example: PENDING: not sent: Slack needs SLACK_BOT_TOKEN, which is not set; " in done.output
    )
    assert not (here / "outbox").exists()


def test_channel_for_keeps_a_channel_that_is_not_set_up_unless_the_outbox_is_chosen(
    tmp_path: Path,
) -> None:
    alice = Subscriber(id="alice", email="alice@example.org")
    config = tmp_path / "digestbot.toml"
    config.write_text('subscriptions_dir = "subs"\n')
    from_file = load_settings(str(config), {})
    assert channel_for(alice, from_file) == "email"
    assert "DIGESTBOT_SMTP_URL" in not_ready("email", alice, from_file)
    assert not_ready("outbox", alice, from_file) == ""
    moved = load_settings(str(config), {"DIGESTBOT_OUTBOX": str(tmp_path / "files")})
    assert channel_for(alice, moved) == "email"  # the variable only moves the folder
    config.write_text('subscriptions_dir = "subs"\noutbox_dir = "outbox"\n')
    chosen = load_settings(str(config), {})
    assert channel_for(alice, chosen) == "outbox"
    smtp = replace(chosen, smtp_url="smtp://127.0.0.1:25")
    assert channel_for(alice, smtp) == "email" and not_ready("email", alice, smtp) == ""


# --- 15.6: a template mistake is named, and the digest is sent once it is fixed ------------------


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (
            "Hello\n{{ subscriber.nmae }}\n",
            2,
            "'bot.models.Subscriber object' has no attribute 'nmae'",
        ),
        ("Hello\n{% if count %}\nmany\n", 3, "Unexpected end of template"),
        ("{{ count }}\n{{ count + 'x' }}\n", 2, "TypeError: unsupported operand"),
    ],
)
def test_a_template_mistake_names_the_file_the_line_and_the_problem(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    (tmp_path / "email.txt.j2").write_text(text, encoding="utf-8")
    settings = Settings(templates_dir=tmp_path, secret_key="k")
    with pytest.raises(TemplateError) as e:
        render_email(digest(1), settings)
    assert e.value.path == str(tmp_path / "email.txt.j2") and e.value.line == line
    assert problem in e.value.problem
    assert str(e.value).startswith(f"{tmp_path / 'email.txt.j2'}, line {line}: {problem}")
    assert "fix the template" in str(e.value)


def test_a_slack_template_mistake_is_named_too(tmp_path: Path) -> None:
    (tmp_path / "slack_item.md.j2").write_text("*{{ item.titel }}*\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"slack_item\.md\.j2, line 1: .*'titel'"):
        slack_messages(digest(1), Settings(templates_dir=tmp_path, secret_key="k"))


def test_preview_names_a_template_mistake_without_a_traceback(here: Path) -> None:
    assert CliRunner().invoke(cli, ["init", "--outbox"]).exit_code == 0
    assert invoke("fetch").exit_code == 0
    (here / "templates" / "email.html.j2").write_text("<p>\n{% if count %}\n", encoding="utf-8")
    done = invoke("preview", "example")
    assert done.exit_code == 1
    assert done.output.startswith(
        "Error: templates/email.html.j2, line 2: Unexpected end of template."
    ), done.output
    assert "Traceback" not in done.output


def test_a_template_mistake_fails_one_digest_the_others_are_sent_and_the_fix_sends_it(
    tmp_path: Path, smtp_server: SmtpPeer
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    broken = templates / "email.txt.j2"
    broken.write_text(
        "{{ count }} papers\n{% if subscriber.id == 'r2' %}{{ subscriber.nmae }}{% endif %}\n",
        encoding="utf-8",
    )
    settings, store = world(tmp_path, smtp_url=smtp_server.url)
    settings = replace(settings, templates_dir=templates)
    subs = [reader(1), reader(2), reader(3)]
    start = time.monotonic()
    first = run(settings, store, subs)
    assert time.monotonic() - start < 5  # no retries with backoff: no retry mends a template
    assert {o.subscriber: o.status for o in first.outcomes} == {
        "r1": "sent",
        "r2": "pending",
        "r3": "sent",
    }
    reason = next(o.reason for o in first.outcomes if o.subscriber == "r2")
    assert reason.startswith(f"{broken}, line 2: 'bot.models.Subscriber object' has no attribute")
    assert "report it" not in reason and "the next run after the fix sends it" in reason
    (row,) = store.digests_with_status("pending")
    assert row.reason == reason and row.attempts == 1

    still = run(settings, store, subs)
    assert [o.status for o in still.recovered] == ["pending"]  # tried once a run while broken

    broken.write_text("{{ count }} papers\n", encoding="utf-8")  # fixed, in the same process
    fixed = run(settings, store, subs)
    assert [(o.subscriber, o.status) for o in fixed.recovered] == [("r2", "sent")]
    assert sorted(m.to[0] for m in smtp_server.mails) == [
        "r1@example.org",
        "r2@example.org",
        "r3@example.org",
    ]
    assert store.digests_with_status("pending") == []


# --- 17.15: an SMTP server that is down costs seconds, not minutes --------------------------------


@pytest.mark.slow  # real backoff: a few seconds
def test_with_smtp_down_25_digests_wait_in_seconds_and_the_next_run_sends_each_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    smtp = SmtpPeer()  # its port chosen, the server not started: connections are refused
    settings, store = world(tmp_path, smtp_url=smtp.url)
    subs = [reader(n) for n in range(25)]
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, "bot.delivery"):
        down = run(settings, store, subs)
    took = time.monotonic() - start
    assert took < 10, f"{took:.1f} s for 25 digests with the server down"
    assert [o.status for o in down.outcomes] == ["pending"] * 25
    assert all("cannot connect to SMTP" in o.reason for o in down.outcomes)
    assert all(o.reason.startswith("not tried: email could not reach") for o in down.outcomes[2:])
    said = [r.getMessage() for r in caplog.records if "is down" in r.getMessage()]
    assert len(said) == 1 and "check that the server is running" in said[0]
    rows = store.digests_with_status("pending")
    assert len(rows) == 25 and {r.owner for r in rows} == {""}

    with smtp:
        up = run(settings, store, subs, RetryPolicy())
    assert [o.status for o in up.recovered] == ["sent"] * 25
    assert sorted(m.digest for m in smtp.mails) == sorted(r.id for r in rows)  # each once


# --- a refused login or an untrusted certificate: the channel is down, no digest fails -----------


def test_a_refused_login_leaves_every_digest_pending_after_one_auth_and_the_fix_sends_each_once(
    here: Path,
) -> None:
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    example = (here / "subscriptions" / "example.toml").read_text()
    for n in range(1, 5):
        (here / "subscriptions" / f"r{n}.toml").write_text(
            example.replace("you@example.org", f"r{n}@example.org")
        )
    with SmtpPeer(users={"digest": "new-password"}) as smtp:
        env = {
            "DIGESTBOT_SMTP_URL": f"smtp://digest@127.0.0.1:{smtp.port}",
            "DIGESTBOT_SMTP_PASSWORD": "old-password",
        }
        wrong = invoke("run", "--once", env=env)
        assert wrong.exit_code == 1
        assert smtp.auth_attempts == ["digest"]  # once in the run, not once per digest
        fix = (
            f"the SMTP server 127.0.0.1:{smtp.port} refused the login for 'digest' (535); check "
            "the user in DIGESTBOT_SMTP_URL and DIGESTBOT_SMTP_PASSWORD; email is not tried again "
            "in this run, its digests wait for the next run"
        )
        assert f"5 digests PENDING (example, r1, r2, r3, r4): {fix}\n" in wrong.stdout
        assert "old-password" not in wrong.output + wrong.stderr
        rows = list(ledger(here))
        assert [(status, reason) for _, status, reason in rows] == [("pending", fix)] * 5

        env["DIGESTBOT_SMTP_PASSWORD"] = "new-password"  # the operator fixes the password
        fixed = invoke("run", "--once", env=env)
        assert fixed.exit_code == 0, fixed.output
        assert sorted(m.digest for m in smtp.mails) == sorted(did for did, _, _ in rows)
        assert {status for _, status, _ in ledger(here)} == {"sent"}
        again = invoke("run", "--once", env=env)
        assert again.exit_code == 0 and smtp.count() == 5  # nothing twice
        assert smtp.logins == ["digest"]  # the third run had nothing due: no login
        assert smtp.auth_attempts == ["digest"] * 2


def test_an_untrusted_certificate_leaves_the_digests_pending_and_is_tried_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peers import make_certificate
    from test_channels_email import tls_server_context

    cert, key = make_certificate(tmp_path)  # not made trusted
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
    with SmtpPeer(tls=tls_server_context(cert, key), users={"bob": "s3cret"}) as smtp:
        settings, store = world(
            tmp_path, smtp_url=f"smtp://bob@127.0.0.1:{smtp.port}", smtp_password="s3cret"
        )
        down = run(settings, store, [reader(n) for n in range(4)])
        assert [o.status for o in down.outcomes] == ["pending"] * 4
        assert len({o.reason for o in down.outcomes}) == 1
        assert "is not trusted" in down.outcomes[0].reason
        assert "set SSL_CERT_FILE to its CA bundle" in down.outcomes[0].reason
        assert smtp.auth_attempts == [] and smtp.mails == []
        assert store.digests_with_status("failed") == []
        assert sorted(r.attempts for r in store.digests_with_status("pending")) == [0, 0, 0, 1]
