"""Shared fixtures: real SQLite in tmp_path, PostgreSQL when DIGESTBOT_TEST_DATABASE_URL is set,
the real fixtures beside the repository, a fake clock for the sources."""

from __future__ import annotations

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
