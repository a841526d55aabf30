"""Shared fixtures: real SQLite in tmp_path, PostgreSQL when DIGESTBOT_TEST_DATABASE_URL is set,
the real fixtures beside the repository, a fake clock for the sources."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.store import Store

ROOT = Path(__file__).resolve().parent.parent
REPO = ROOT
SHARED = ROOT.parent / "shared"
SHARED_FIXTURES = SHARED / "fixtures"
DATA = Path(__file__).resolve().parent / "data"


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test saying why."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared fixtures live beside the repository (../shared)")
    return path


def _postgres_schema_url(base: str) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL server, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL: SQLite always, PostgreSQL when DIGESTBOT_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base = os.environ.get("DIGESTBOT_TEST_DATABASE_URL")
    if not base:
        pytest.skip("set DIGESTBOT_TEST_DATABASE_URL to run the store tests on PostgreSQL")
    yield from _postgres_schema_url(base)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A fresh store on each backend."""
    s = Store(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def shared_fixture() -> Callable[[str], Path]:
    """A file from ../shared/fixtures/, or skip the test when that copy is absent."""

    def find(relative: str) -> Path:
        path = SHARED_FIXTURES / relative
        if not path.is_file():
            pytest.skip(f"real fixture {relative} not found: ../shared/fixtures/ is absent beside the clone")
        return path

    return find


class FakeClock:
    """A clock that records sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    """Replace the sources' clock; each test starts with no request to any host on record."""
    from bot.sources import _http

    clock = FakeClock()
    monkeypatch.setattr(_http, "CLOCK", clock)
    monkeypatch.setattr(_http, "_last_call", {})
    yield clock


# ---- channels: local SMTP and Slack servers (owned by the channels work; see tests/_servers.py) ----
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
def send_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
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


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI sets up the root logger (digestbot -v, --log-format); every test leaves it as it found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
