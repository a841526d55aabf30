"""Shared test helpers: the real fixtures beside the repository, a fake clock for the sources."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"
DATA = Path(__file__).resolve().parent / "data"


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
