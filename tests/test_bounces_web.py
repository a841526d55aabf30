"""The manage page of a subscriber suspended by bounces: it says why, and its button resumes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from peers import free_port
from web_support import csrf_of, running

from bot import tokens
from bot.bounces.policy import Kind, record
from bot.config import Settings
from bot.roster import load_roster
from bot.store import BounceRow, Store
from bot.web import create_app


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Settings, Store]]:
    subs = tmp_path / "subscriptions"
    subs.mkdir()
    (subs / "alice.toml").write_text(
        'email = "alice@example.org"\n[interests]\nkeywords = ["quantization"]\n'
    )
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        base_url=f"http://127.0.0.1:{port}",
        secret_key="test-secret-key",
        subscriptions_dir=subs,
    )
    with Store(settings.database_url) as store, running(create_app(settings, store), port) as url:
        yield url, settings, store


def test_the_manage_page_shows_a_suspension_and_its_button_lifts_it(
    site: tuple[str, Settings, Store],
) -> None:
    url, settings, store = site
    reason = "550 5.1.1 <alice@example.org>: user unknown"
    at = datetime.now(UTC)
    record(store, settings, BounceRow("alice", Kind.HARD, "550 5.1.1", reason, at))
    assert load_roster(settings, store)[0] == []
    manage = f"{url}/manage/{tokens.sign(settings, 'manage', 'alice')}"
    s = requests.Session()
    page = s.get(manage)
    assert page.status_code == 200
    assert "<strong>suspended</strong>" in page.text
    assert "&lt;alice@example.org&gt;: user unknown" in page.text  # escaped
    assert 'value="resume">Resume digests</button>' in page.text
    done = s.post(manage, data={"csrf": csrf_of(page.text), "action": "resume"})
    assert done.status_code == 200 and "suspended" not in done.text
    assert store.suspensions() == {}
    assert [x.id for x in load_roster(settings, store)[0]] == ["alice"]
