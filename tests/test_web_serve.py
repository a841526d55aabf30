"""`digestbot serve`: never the public development key off this machine, links to the port it
serves on when base_url is unset, X-Forwarded-For only from configured proxies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from peers import SmtpPeer, free_port
from web_support import csrf_of, digestbot_serve, link_in

from bot.cli.web import serving_settings
from bot.config import Settings, load_settings
from bot.errors import ConfigError, PermanentSendError
from bot.web import app as web_app
from bot.web import create_app, mailer
from bot.web.limits import loopback, refuse_development_key


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DIGESTBOT_", "SLACK_")) or k == "DIGESTBOT_TEST_DATABASE_URL"
    }
    env["DIGESTBOT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite'}"
    return {**env, **extra}


# --- the development key ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "base_url"),
    [("127.0.0.1", "http://localhost:8000"), ("::1", "http://[::1]:9000"), ("localhost", "")],
)
def test_the_development_key_is_allowed_only_on_loopback(host: str, base_url: str) -> None:
    assert loopback(host)
    refuse_development_key(base_url or "http://127.0.0.1:8000", host)  # no error


@pytest.mark.parametrize(
    ("host", "base_url", "says"),
    [
        ("0.0.0.0", "http://localhost:8000", "listens on 0.0.0.0"),
        ("192.0.2.1", "http://127.0.0.1:8000", "listens on 192.0.2.1"),
        ("127.0.0.1", "https://digest.example.org", "links point at https://digest.example.org"),
        ("127.0.0.1", "http://127.0.0.1.example.org", "links point at"),
    ],
)
def test_the_development_key_is_refused_when_anything_leaves_this_machine(
    host: str, base_url: str, says: str
) -> None:
    with pytest.raises(ConfigError, match="DIGESTBOT_SECRET_KEY is not set") as e:
        refuse_development_key(base_url, host)
    assert says in str(e.value) and "secrets.token_urlsafe" in str(e.value)


def test_the_app_refuses_to_sign_public_links_with_the_development_key(tmp_path: Path) -> None:
    public = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", base_url="https://digest.example.org"
    )
    with pytest.raises(ConfigError, match="anyone could forge its links"):
        create_app(public)
    assert not (tmp_path / "db.sqlite").exists()  # refused before opening anything


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--host", "0.0.0.0"], {}, "DIGESTBOT_SECRET_KEY is not set"),
        ([], {"DIGESTBOT_BASE_URL": "https://digest.example.org"}, "DIGESTBOT_SECRET_KEY"),
        (["--host", "0.0.0.0"], {"DIGESTBOT_SECRET_KEY": "k" * 32}, "base_url is not set"),
    ],
)
def test_serve_refuses_in_one_line_instead_of_serving_forgeable_links(
    tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    port = str(free_port())
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--port", port, *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert "Traceback" not in done.stderr


# --- base_url and the port -------------------------------------------------------------------------
def test_without_base_url_links_point_at_the_served_address() -> None:
    assert serving_settings(Settings(), "127.0.0.1", 18000).base_url == "http://127.0.0.1:18000"
    assert serving_settings(Settings(), "::1", 18000).base_url == "http://[::1]:18000"
    chosen = Settings(base_url="https://digest.example.org")
    assert serving_settings(chosen, "0.0.0.0", 18000) is chosen  # base_url set: kept
    with pytest.raises(ConfigError, match="base_url is not set"):
        serving_settings(Settings(), "0.0.0.0", 18000)


@pytest.mark.slow
def test_serve_mails_its_own_port_and_ignores_forwarded_for_by_default(tmp_path: Path) -> None:
    port = free_port()
    with SmtpPeer() as inbox:
        env = _env(tmp_path, DIGESTBOT_SMTP_URL=inbox.url, DIGESTBOT_SECRET_KEY="s" * 32)
        with digestbot_serve(tmp_path, port, env):
            url = f"http://127.0.0.1:{port}"
            s = requests.Session()
            csrf = csrf_of(s.get(url + "/").text)
            codes = []
            for n in range(web_app.PER_CLIENT_PER_HOUR + 1):
                data = {"csrf": csrf, "email": f"p{n}@example.org", "keywords": "x"}
                forwarded = {"X-Forwarded-For": f"203.0.113.{n + 1}"}
                codes.append(s.post(url + "/subscribe", data=data, headers=forwarded).status_code)
            mail = inbox.wait(1)[0]
    # base_url unset: the link goes to the port it serves on (not to localhost:8000).
    assert link_in(mail, "/confirm/").startswith(f"http://127.0.0.1:{port}/confirm/")
    # Every request came from 127.0.0.1; each claimed another client: one bucket all the same.
    assert codes == [200] * web_app.PER_CLIENT_PER_HOUR + [429]


# --- where confirmation mail goes --------------------------------------------------------------
def test_confirmation_mail_is_never_silently_written_to_an_unchosen_outbox(tmp_path: Path) -> None:
    config = tmp_path / "digestbot.toml"
    config.write_text('subscriptions_dir = "subscriptions"\n')
    unchosen = load_settings(str(config), environ={})
    msg = mailer.build(unchosen, "p@example.org", "Confirm", "text")
    assert mailer.destination(unchosen) == ""
    with pytest.raises(PermanentSendError, match="DIGESTBOT_SMTP_URL"):
        mailer.send(unchosen, msg)
    assert not (tmp_path / "outbox").exists()

    config.write_text('subscriptions_dir = "subscriptions"\noutbox_dir = "outbox"\n')
    trial = load_settings(str(config), environ={})
    assert mailer.destination(trial) == str(tmp_path / "outbox" / "_web")
    written = Path(mailer.send(trial, msg))
    assert written.parent == tmp_path / "outbox" / "_web" and b"Confirm" in written.read_bytes()


@pytest.mark.slow
def test_serve_says_where_confirmation_mail_goes(tmp_path: Path) -> None:
    port = free_port()
    with SmtpPeer() as inbox:
        env = _env(tmp_path, DIGESTBOT_SMTP_URL=inbox.url)
        with digestbot_serve(tmp_path, port, env) as with_smtp:
            pass
        with digestbot_serve(tmp_path, free_port(), _env(tmp_path)) as without:
            pass
    assert f"Confirmation mail goes to 127.0.0.1:{inbox.url.rsplit(':', 1)[1]}" in with_smtp.err
    assert "Warning: the web front has nowhere to mail confirmation links" in without.err
