"""Secrets out of logs (`bot.masking`): what is masked, and uvicorn's access log through it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import requests
from peers import free_port
from test_web_serve import _env
from web_support import digestbot_serve

from bot import tokens
from bot.config import Settings
from bot.masking import SecretFilter, mask_secrets

TOKEN = "eyJzIjoiYm9iIiwiYSI6ImJAZXhhbXBsZS5vcmcifQ.aBcDeF.GhIjKlMnOpQrStUvWxYz_-01"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:ab/c+d==@db/x", "postgresql://u:***@db/x"),  # "/" in a password
        ("smtp://user@host:25/x", "smtp://user@host:25/x"),  # no password: nothing to mask
        (  # a port and a path holding "@" are not a password
            "https://host:8443/people/alice@example.org",
            "https://host:8443/people/alice@example.org",
        ),
        ("redis://:s3cr/t@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgresql://u:2024/pass@db/x", "postgresql://u:***@db/x"),  # digits then "/": still one
        (f"GET /manage/{TOKEN} HTTP/1.1", "GET /manage/*** HTTP/1.1"),
        (f"/unsubscribe/{TOKEN}", "/unsubscribe/***"),
        (f"/feedback/{TOKEN}/up", "/feedback/***/up"),
        (f"/feed/{TOKEN}.xml", "/feed/***"),
        (
            "/slack/oauth_redirect?code=1234.5678&state=s1",
            "/slack/oauth_redirect?code=***&state=s1",
        ),
        ("see /manage/ and /digest/abc", "see /manage/ and /digest/abc"),  # no token there
    ],
)
def test_what_is_masked(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


def test_a_record_whose_formatter_reads_its_arguments_keeps_them_masked() -> None:
    """uvicorn's AccessFormatter unpacks `record.args` (client, method, path, version, status):
    the filter masks the path inside them instead of replacing them with None."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/manage/{TOKEN}", "1.1", 200),
        None,
    )
    assert SecretFilter().filter(record)
    assert record.args == ("127.0.0.1:5000", "GET", "/manage/***", "1.1", 200)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /manage/*** HTTP/1.1" 200'


@pytest.mark.slow
def test_serve_logs_no_link_token(tmp_path: Path) -> None:
    port = free_port()
    key = "k" * 32
    link = tokens.sign(Settings(secret_key=key), "manage", "bob")
    env = _env(tmp_path, DIGESTBOT_SECRET_KEY=key)
    with digestbot_serve(tmp_path, port, env) as served:
        for path in (
            f"/manage/{link}",
            f"/feed/{link}.xml",
            "/slack/oauth_redirect?code=c0de.s3cret",
        ):
            requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    logs = served.out + served.err
    assert "GET /manage/*** HTTP/1.1" in logs, logs
    assert link not in logs and "c0de.s3cret" not in logs
