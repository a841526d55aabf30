"""`/slack/install` takes bounded work from a stranger: each start writes an OAuth state row, so
starts are rate-limited per client and expired states are forgotten (slack-sdk deletes a state
only when it is used)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from peers import SlackPeer
from slack_support import SlackApp, slack_app
from sqlalchemy import func, insert, select

from bot.slack import oauth
from bot.store import slack_oauth_states


@pytest.fixture
def app(backend_url: str) -> Iterator[SlackApp]:
    with (
        SlackPeer() as peer,
        slack_app(
            backend_url, peer, SLACK_CLIENT_ID="1234.5678", SLACK_CLIENT_SECRET="client-secret"
        ) as a,
    ):
        yield a


def _states(app: SlackApp) -> int:
    with app.store.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(slack_oauth_states)).scalar_one())


def test_install_starts_are_limited_per_client_and_expired_states_go(
    app: SlackApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oauth, "INSTALLS_PER_CLIENT_PER_HOUR", 3)
    long_ago = (datetime.now(UTC) - timedelta(hours=2)).replace(tzinfo=None)
    with app.store.begin() as conn:  # an install abandoned two hours ago
        conn.execute(insert(slack_oauth_states).values(state="abandoned", expire_at=long_ago))
    codes = [
        requests.get(app.url + "/slack/install", allow_redirects=False).status_code
        for _ in range(5)
    ]
    assert codes == [302, 302, 302, 429, 429]
    assert _states(app) == 3  # the three issued; the expired one forgotten, none for the refused
