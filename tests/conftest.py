"""Shared pytest fixtures."""

from __future__ import annotations

# ---- channels: local SMTP and Slack servers (owned by the channels work; see tests/_servers.py) ----
from collections.abc import Iterator
from pathlib import Path

import pytest

from _servers import SLACK_FIXTURES, SlackServer, SmtpServer, make_certificate


@pytest.fixture
def slack_fixtures() -> Path:
    """../shared/fixtures/slack, or skip."""
    if not SLACK_FIXTURES.is_dir():
        pytest.skip(f"Slack fixtures not found at {SLACK_FIXTURES} (they live in ../shared beside the repo)")
    return SLACK_FIXTURES


@pytest.fixture
def slack_server(slack_fixtures: Path) -> Iterator[SlackServer]:
    """A local Slack Web API answering with the real bodies from the fixtures."""
    with SlackServer() as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain aiosmtpd server on loopback."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def test_cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A certificate made for this test, trusted by ssl.create_default_context() via SSL_CERT_FILE."""
    cert, key = make_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return cert, key


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replace the rate limiter's clock: sleeping advances it; returns the list of sleeps."""
    from bot.channels import _ratelimit

    now = [1000.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    monkeypatch.setattr(_ratelimit, "_clock", lambda: now[0])
    monkeypatch.setattr(_ratelimit, "_sleep", sleep)
    monkeypatch.setattr(_ratelimit, "_shared", {})
    return sleeps
# ---- end channels ----
