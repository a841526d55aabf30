"""Installing into many workspaces through the OAuth flow (slack-sdk's SQLAlchemy installation and
state stores on digestbot's database), a token per workspace, workspaces isolated from each
other, and uninstall deleting the tokens and stopping digests."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from peers import SlackPeer
from slack_support import SECRET, SlackApp, slack_app, wait_until

from bot.channels import CHANNELS
from bot.masking import SecretFilter
from bot.models import Digest, DigestItem, Entry, Interests
from bot.roster import load_roster
from bot.slack import installs
from bot.slack.installs import SCOPES
from bot.slack.members import slack_subscriber

CLIENT = ("1234.5678", "client-secret-for-tests")
LAB_A, LAB_B = "T0LABA", "T0LABB"


@pytest.fixture
def app(backend_url: str) -> Iterator[SlackApp]:
    with SlackPeer() as peer:
        peer.client = CLIENT
        peer.codes = {
            "code-a": (LAB_A, "Lab A", "xoxb-lab-a-token"),
            "code-b": (LAB_B, "Lab B", "xoxb-lab-b-token"),
        }
        peer.tokens = {}  # only installed tokens work (SLACK_BOT_TOKEN is not one of them)
        with slack_app(
            backend_url,
            peer,
            SLACK_BOT_TOKEN="",
            SLACK_CLIENT_ID=CLIENT[0],
            SLACK_CLIENT_SECRET=CLIENT[1],
        ) as a:
            yield a


def install(app: SlackApp, code: str) -> requests.Response:
    """The whole flow as a browser runs it: /slack/install, Slack's page (skipped), the redirect."""
    browser = requests.Session()
    start = browser.get(app.url + "/slack/install", allow_redirects=False)
    assert start.status_code == 302
    where = urlsplit(start.headers["location"])
    query = parse_qs(where.query)
    assert f"{where.scheme}://{where.netloc}{where.path}" == "https://slack.com/oauth/v2/authorize"
    assert query["client_id"] == [CLIENT[0]]
    assert query["scope"] == [",".join(SCOPES)]
    assert query["redirect_uri"] == [app.url + "/slack/oauth_redirect"]
    state = query["state"][0]
    done = browser.get(app.url + "/slack/oauth_redirect", params={"code": code, "state": state})
    # The same state again (a replayed redirect) is refused, whatever the code.
    again = requests.get(
        app.url + "/slack/oauth_redirect",
        params={"code": code, "state": state},
        cookies={"slack-app-oauth-state": state},  # the cookie kept, too
    )
    assert again.status_code == 400 and "used already" in again.text
    return done


def test_two_workspaces_install_each_with_its_own_token(app: SlackApp) -> None:
    assert install(app, "code-a").status_code == 200
    done = install(app, "code-b")
    assert done.status_code == 200 and "Lab B" in done.text
    assert "xoxb-" not in done.text
    s, store = app.settings, app.store
    assert installs.team_token(s, store, LAB_A) == "xoxb-lab-a-token"
    assert installs.team_token(s, store, LAB_B) == "xoxb-lab-b-token"
    assert installs.team_token(s, store, "T0NOBODY") == ""
    # Each workspace's members get their DM with their own workspace's token.
    store.save_slack_member(LAB_A, "U0ANN", interests={"keywords": ["x"]})
    store.save_slack_member(LAB_B, "U0BEN", interests={"keywords": ["x"]})
    sender = CHANNELS["slack"](s)
    entry = Entry(id="arxiv:2603.00001", title="Paper", url="https://arxiv.org/abs/2603.00001")
    slot = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    for team, user in ((LAB_A, "U0ANN"), (LAB_B, "U0BEN")):
        row = store.slack_member(team, user)
        assert row is not None
        sub = slack_subscriber(row)
        sender.send(Digest(f"{sub.id}.x", sub, slot, (DigestItem(entry, 0.9),)))
    sender.close()
    auths = [c["auth"] for c in app.peer.calls("chat.postMessage")]
    assert auths == ["Bearer xoxb-lab-a-token", "Bearer xoxb-lab-b-token"]


def test_an_install_needs_the_browser_that_started_it(app: SlackApp) -> None:
    start = requests.get(app.url + "/slack/install", allow_redirects=False)
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    # Another browser (no cookie) with a stolen state: refused, and no token kept.
    r = requests.get(app.url + "/slack/oauth_redirect", params={"code": "code-a", "state": state})
    assert r.status_code == 400
    forged = requests.get(
        app.url + "/slack/oauth_redirect",
        params={"code": "code-a", "state": "made-up"},
        cookies={"slack-app-oauth-state": "made-up"},
    )
    assert forged.status_code == 400
    assert installs.installed_token(app.settings, app.store, LAB_A) == ""


def test_a_member_of_one_workspace_cannot_read_or_change_the_others(app: SlackApp) -> None:
    install(app, "code-a")
    install(app, "code-b")
    assert app.command("subscribe quantization", user="U0ANN", team=LAB_A).status_code == 200
    wait_until(lambda: app.peer.responses)  # the work after the answer is done
    before = app.store.slack_member(LAB_A, "U0ANN")
    # Validly signed, from workspace B, carrying workspace A's user id.
    shown = app.command("show", user="U0ANN", team=LAB_B)
    assert shown.status_code == 200 and "quantization" not in shown.text
    assert "no subscription" in shown.json()["text"]
    for text in ("unsubscribe", "pause", "keywords stolen"):
        assert app.command(text, user="U0ANN", team=LAB_B).status_code == 200
    assert app.store.slack_member(LAB_A, "U0ANN") == before
    # The keywords made B's own member U0ANN (a different person), not A's.
    theirs = app.store.slack_member(LAB_B, "U0ANN")
    assert theirs is not None and Interests.from_dict(theirs.interests).keywords == ("stolen",)
    # App Home and buttons from B never show or touch A's row either.
    app.event(
        {
            "type": "event_callback",
            "team_id": LAB_B,
            "event": {"type": "app_home_opened", "user": "U0ANN", "tab": "home"},
        }
    )
    wait_until(lambda: any(v["team"] == LAB_B for v in app.peer.views))
    view = [v for v in app.peer.views if v["team"] == LAB_B][-1]
    assert "quantization" not in json.dumps(view["view"])
    click = {
        "type": "block_actions",
        "team": {"id": LAB_B},
        "user": {"id": "U0ANN", "team_id": LAB_B},
        "actions": [{"action_id": "digestbot_home_unsubscribe", "type": "button"}],
    }
    assert app.interact(click).status_code == 200
    assert app.store.slack_member(LAB_A, "U0ANN") == before


def members(app: SlackApp) -> set[str]:
    """The Slack members who receive digests."""
    return {s.id for s in load_roster(app.settings, app.store)[0] if s.origin == "slack"}


def test_uninstall_deletes_the_tokens_and_stops_that_workspaces_digests(app: SlackApp) -> None:
    install(app, "code-a")
    install(app, "code-b")
    app.command("subscribe quantization", user="U0ANN", team=LAB_A)
    app.command("subscribe pruning", user="U0BEN", team=LAB_B)
    assert members(app) == {f"slack-{LAB_A}-U0ANN", f"slack-{LAB_B}-U0BEN"}
    gone = {"type": "event_callback", "team_id": LAB_A, "event": {"type": "app_uninstalled"}}
    assert app.event(gone).status_code == 200
    assert installs.installed_token(app.settings, app.store, LAB_A) == ""
    assert installs.installed_token(app.settings, app.store, LAB_B) == "xoxb-lab-b-token"
    assert members(app) == {f"slack-{LAB_B}-U0BEN"}
    assert app.store.slack_member(LAB_A, "U0ANN").status == "uninstalled"  # type: ignore[union-attr]
    # A's requests are now from an unknown workspace.
    assert app.command("resume", user="U0ANN", team=LAB_A).status_code == 403
    # tokens_revoked for B's bot token does the same for B.
    revoked = {
        "type": "event_callback",
        "team_id": LAB_B,
        "event": {"type": "tokens_revoked", "tokens": {"bot": ["U0KRQLJ9H"]}},
    }
    assert app.event(revoked).status_code == 200
    assert installs.installed_token(app.settings, app.store, LAB_B) == ""
    assert members(app) == set()
    # Installing A again brings its members back.
    app.peer.codes["code-a2"] = (LAB_A, "Lab A", "xoxb-lab-a-new")
    assert install(app, "code-a2").status_code == 200
    assert app.store.slack_member(LAB_A, "U0ANN").status == "active"  # type: ignore[union-attr]


def test_without_client_id_install_says_what_to_set(backend_url: str) -> None:
    with SlackPeer() as peer, slack_app(backend_url, peer) as app:
        r = requests.get(app.url + "/slack/install", allow_redirects=False)
    assert r.status_code == 404 and "SLACK_CLIENT_ID" in r.text


def test_no_secret_reaches_the_logs_of_an_install(app: SlackApp) -> None:
    """slack-sdk's debug log prints oauth.v2.access's answer (the bot token): digestbot's
    SecretFilter masks it; the client secret and the signing secret never appear."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    keep = Keep(logging.DEBUG)
    keep.addFilter(SecretFilter())
    root = logging.getLogger()
    old = root.level
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    try:
        assert install(app, "code-a").status_code == 200
        app.command("subscribe quantization", user="U0ANN", team=LAB_A)
        wait_until(lambda: app.peer.responses)
    finally:
        root.removeHandler(keep)
        root.setLevel(old)
    text = "\n".join(lines)
    assert "oauth.v2.access" in text and "xoxb-***" in text  # the answer logged, masked
    basic = base64.b64encode(f"{CLIENT[0]}:{CLIENT[1]}".encode()).decode()
    for secret in (CLIENT[1], basic, "xoxb-lab-a-token", SECRET):
        assert secret not in text


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_installation_tables_are_exactly_slack_sdks(dialect: str) -> None:
    """_schema writes slack-sdk's tables out (opening the store imports none of slack-sdk's
    SQLAlchemy modules): the DDL must stay what slack-sdk's own builders make."""
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
    from sqlalchemy import MetaData
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from bot.store import _schema

    theirs = MetaData()
    built = {
        "slack_bots": SQLAlchemyInstallationStore.build_bots_table(theirs, "slack_bots"),
        "slack_installations": SQLAlchemyInstallationStore.build_installations_table(
            theirs, "slack_installations"
        ),
        "slack_oauth_states": SQLAlchemyOAuthStateStore.build_oauth_states_table(
            theirs, "slack_oauth_states"
        ),
    }
    on = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}[dialect]

    def ddl(table: Any) -> list[str]:
        indexes = sorted(str(CreateIndex(i).compile(dialect=on)) for i in table.indexes)
        return [str(CreateTable(table).compile(dialect=on)), *indexes]

    for name, table in built.items():
        ours = getattr(_schema, name)
        assert ddl(ours) == ddl(table), name
        defaults = {c.name: (c.default is not None) for c in table.columns}
        assert {c.name: (c.default is not None) for c in ours.columns} == defaults


def test_a_workspace_inside_an_enterprise_grid_is_served_and_uninstalled(app: SlackApp) -> None:
    """Its installation keeps the grid's id: lookups by team still find it (slack-sdk would look
    for `enterprise_id IS NULL`), and uninstall deletes its tokens."""
    app.peer.enterprises[LAB_A] = "E0GRID"
    assert install(app, "code-a").status_code == 200
    assert installs.team_token(app.settings, app.store, LAB_A) == "xoxb-lab-a-token"
    r = app.command("subscribe quantization", user="U0ANN", team=LAB_A, enterprise_id="E0GRID")
    assert r.status_code == 200, r.text
    gone = {
        "type": "event_callback",
        "team_id": LAB_A,
        "enterprise_id": "E0GRID",
        "event": {"type": "app_uninstalled"},
    }
    assert app.event(gone).status_code == 200
    assert installs.installed_token(app.settings, app.store, LAB_A) == ""
    assert app.store.slack_member(LAB_A, "U0ANN").status == "uninstalled"  # type: ignore[union-attr]
    assert app.command("show", user="U0ANN", team=LAB_A).status_code == 403
