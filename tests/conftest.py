"""Shared fixtures: real SQLite in tmp_path, PostgreSQL when DIGESTBOT_TEST_DATABASE_URL is set,
the SMTP and Slack peers (tests/peers/), the real fixtures beside the repository, fake clocks."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from peers import SLACK_FIXTURES, SlackPeer, SmtpPeer, make_certificate, pg_schema

from bot.store import Store

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
DATA = Path(__file__).resolve().parent / "data"  # the project's own small fixtures


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL once per backend: SQLite in tmp_path, and a fresh PostgreSQL schema (see `pg_url`)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    with pg_schema() as pg:
        yield pg.url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema's URL (DIGESTBOT_TEST_DATABASE_URL), dropped afterwards; skips without one."""
    with pg_schema() as pg:
        yield pg.url


@pytest.fixture
def store(backend_url: str) -> Iterator[Store]:
    """A fresh store on each backend."""
    s = Store(backend_url)
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
            pytest.skip(
                f"real fixture {relative} not found: ../shared/fixtures/ is absent beside the clone"
            )
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


@pytest.fixture
def slack_fixtures() -> Path:
    """../shared/fixtures/slack, or skip."""
    if not SLACK_FIXTURES.is_dir():
        pytest.skip(
            f"Slack fixtures not found at {SLACK_FIXTURES} (they live in ../shared beside the repo)"
        )
    return SLACK_FIXTURES


@pytest.fixture
def slack_server(slack_fixtures: Path) -> Iterator[SlackPeer]:
    """A Slack Web API on loopback whose posts get Slack's real answer from the fixtures."""
    ok = json.loads((slack_fixtures / "chat.postMessage__ok__slack_docs_example.json").read_bytes())
    with SlackPeer(ok_body=ok) as server:
        yield server


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder and no digestbot variables in the environment."""
    for var in list(os.environ):
        if var.startswith(("DIGESTBOT_", "SLACK_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def smtp_server() -> Iterator[SmtpPeer]:
    """A plain SMTP server on loopback that accepts everything (change its `script` to misbehave)."""
    with SmtpPeer() as server:
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


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI sets up the root logger (digestbot -v, --log-format); every test leaves it as it found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {
        name: lg.level
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for (
        name,
        lg,
    ) in logging.root.manager.loggerDict.items():  # e.g. `fetch` quiets bot.ingest's warnings
        if isinstance(lg, logging.Logger):
            lg.setLevel(levels.get(name, logging.NOTSET))


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digestbot's wheel, built once per test session from this checkout (no dependencies)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("wheel")
    root = Path(__file__).resolve().parent.parent
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--wheel-dir",
        str(out),
        str(root),
    ]
    done = subprocess.run(build, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (found,) = out.glob("digestbot-*.whl")
    return found
