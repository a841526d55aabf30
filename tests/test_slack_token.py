"""A bot token Slack refuses (`token_revoked`, `invalid_auth`, …) for the whole workspace: no digest
is to blame, so none fails. They wait with the fix, Slack sees one refused call a run (not one per
digest), digests sent with another token (another workspace, a webhook) still go, and the first run
after the fix sends each once."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner, Result
from peers import SlackPeer
from test_slack_dm import project  # a folder whose only subscribers are Slack members

from bot.cli import cli
from bot.slack import installs
from bot.store import Store

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
_RUNS = itertools.count()


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with SlackPeer() as p:
        yield p


def invoke(*args: str, env: dict[str, str]) -> Result:
    """`digestbot ARGS` on the example's day, each call a minute after the one before (as cron)."""
    with time_machine.travel(NOW + timedelta(minutes=next(_RUNS)), tick=True):
        return CliRunner().invoke(cli, list(args), env=env, prog_name="digestbot")


def statuses(db: str) -> dict[str, tuple[str, str]]:
    with Store(db) as store:
        rows = store.digests_with_status("pending", "sent", "failed")
        return {r.subscriber_id: (r.status, r.reason) for r in rows}


def posts(peer: SlackPeer) -> list[str]:
    """The digest id of each message posted (webhook and Web API alike)."""
    return [p["metadata"]["event_payload"]["digest_id"] for p in peer.posted]


def test_a_revoked_bot_token_leaves_every_channel_digest_pending_after_one_refused_call(
    here: Path, peer: SlackPeer
) -> None:
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    subs = here / "subscriptions"
    example = (subs / "example.toml").read_text()
    for n in range(1, 5):
        (subs / f"r{n}.toml").write_text(
            example.replace('email = "you@example.org"', f'slack_channel = "#papers-{n}"')
        )
    (subs / "example.toml").write_text(
        example.replace('email = "you@example.org"', 'slack_channel = "#papers"')
    )
    # A webhook does not use the bot token: its digest still goes.
    (subs / "hook.toml").write_text(
        example.replace('email = "you@example.org"', 'slack_webhook_env = "SLACK_WEBHOOK_LAB"')
    )
    env = {
        "DIGESTBOT_SLACK_API_URL": peer.url,
        "SLACK_BOT_TOKEN": "xoxb-removed-app",
        "SLACK_WEBHOOK_LAB": peer.webhook_url,
    }
    peer.channels.update({f"papers-{n}": f"C0PAPERS1{n}" for n in range(1, 5)})
    peer.revoked.add("xoxb-removed-app")
    first = invoke("run", "--once", env=env)
    assert first.exit_code == 1
    refused = [r for r in peer.requests if r["method"] != "webhook"]
    assert [r["method"] for r in refused] == ["chat.postMessage"]  # one call, not one per digest
    fix = (
        "Slack refused SLACK_BOT_TOKEN: token_revoked; the app was removed from the workspace or "
        "its token revoked; reinstall the Slack app and set SLACK_BOT_TOKEN to its new bot token; "
        "slack (SLACK_BOT_TOKEN) is not tried again in this run, its digests wait for the next run"
    )
    assert f"5 digests PENDING (example, r1, r2, r3, r4): {fix}\n" in first.stdout
    assert "xoxb-removed-app" not in first.output + first.stderr
    db = str(here / "digestbot.db")
    rows = statuses(f"sqlite:///{db}")
    assert rows.pop("hook")[0] == "sent"
    assert rows == {s: ("pending", fix) for s in ("example", "r1", "r2", "r3", "r4")}
    assert len(peer.posted) == 1  # the webhook's

    still = invoke("run", "--once", env=env)  # not fixed yet: again one refused call
    assert still.exit_code == 1
    assert len([r for r in peer.requests if r["method"] != "webhook"]) == 2
    assert {s for s, _ in statuses(f"sqlite:///{db}").values()} == {"pending", "sent"}

    env["SLACK_BOT_TOKEN"] = "xoxb-reinstalled-app"  # the operator reinstalls the app
    fixed = invoke("run", "--once", env=env)
    assert fixed.exit_code == 0, fixed.output
    assert {s for s, _ in statuses(f"sqlite:///{db}").values()} == {"sent"}
    channels = [p["channel"] for p in peer.posted if p["channel"] != "webhook"]
    assert sorted(channels) == ["C0PAPERS01"] + [f"C0PAPERS1{n}" for n in range(1, 5)]
    assert len(set(posts(peer))) == len(posts(peer)) == 6  # each digest once
    again = invoke("run", "--once", env=env)
    assert again.exit_code == 0 and len(peer.posted) == 6


def _install(db: str, config: Path, team: str, token: str) -> None:
    """What the OAuth redirect keeps for a workspace (oauth.v2.access's answer)."""
    from bot.config import load_settings

    settings = load_settings(str(config), {"SLACK_CLIENT_ID": "1234.5678"})
    with Store(db) as store:
        installs.save_installation(
            settings,
            store,
            {"app_id": "A0KRD7HC3", "team": {"id": team, "name": team}, "access_token": token},
        )


def test_a_workspace_whose_token_is_revoked_waits_and_the_other_workspaces_get_theirs(
    tmp_path: Path, backend_url: str, peer: SlackPeer
) -> None:
    config = project(tmp_path, backend_url, peer)
    peer.tokens = {"xoxb-lab-a": "T0LABA", "xoxb-lab-b": "T0LABB", "xoxb-lab-a-new": "T0LABA"}
    _install(backend_url, config, "T0LABA", "xoxb-lab-a")
    _install(backend_url, config, "T0LABB", "xoxb-lab-b")
    with Store(backend_url) as store:
        for team, user in (("T0LABA", "U0ANN"), ("T0LABA", "U0AMY"), ("T0LABB", "U0BEN")):
            store.save_slack_member(team, user, interests={"keywords": ["quantization"]})
    peer.revoked.add("xoxb-lab-a")  # Lab A removed the app
    env = {"SLACK_CLIENT_ID": "1234.5678", "DIGESTBOT_SECRET_KEY": "k"}

    def run() -> Result:
        return invoke("--config", str(config), "run", "--once", env=env)

    first = run()
    assert first.exit_code == 1, first.output
    refused = [r for r in peer.requests if r["auth"] == "Bearer xoxb-lab-a"]
    assert [r["method"] for r in refused] == ["conversations.open"]  # once for the workspace
    fix = (
        "Slack refused the bot token of the workspace T0LABA: token_revoked; the workspace "
        "removed digestbot; reinstall it there (https://digest.example.org/slack/install); "
        "slack (the workspace T0LABA) is not tried again in this run, its digests wait for the "
        "next run"
    )
    for user in ("U0ANN", "U0AMY"):
        assert f"slack-T0LABA-{user}: PENDING: {fix}\n" in first.stdout
    rows = statuses(backend_url)
    assert rows["slack-T0LABB-U0BEN"][0] == "sent"  # the other workspace's digest went
    assert rows["slack-T0LABA-U0ANN"] == rows["slack-T0LABA-U0AMY"] == ("pending", fix)
    assert [p["channel"] for p in peer.posted] == ["D0LAB0BEN"]

    _install(backend_url, config, "T0LABA", "xoxb-lab-a-new")  # Lab A installs it again
    fixed = run()
    assert fixed.exit_code == 0, fixed.output
    assert {s for s, _ in statuses(backend_url).values()} == {"sent"}
    assert sorted(p["channel"] for p in peer.posted) == ["D0LAB0AMY", "D0LAB0ANN", "D0LAB0BEN"]
    assert len(set(posts(peer))) == 3


def test_a_long_lived_channel_uses_the_token_of_a_reinstall_after_a_refusal(
    tmp_path: Path, backend_url: str, peer: SlackPeer, send_clock: list[float]
) -> None:
    """A pool worker keeps its Slack channel for days: the token it cached for a workspace is
    looked up again once Slack refused it, so the workspace's reinstall is used without a restart."""
    from bot.channels import CHANNELS
    from bot.config import load_settings
    from bot.errors import ChannelDownError
    from bot.models import Digest, DigestItem, Entry
    from bot.slack.members import slack_subscriber

    config = project(tmp_path, backend_url, peer)
    peer.tokens = {"xoxb-lab-a": "T0LABA", "xoxb-lab-a-new": "T0LABA"}
    _install(backend_url, config, "T0LABA", "xoxb-lab-a")
    with Store(backend_url) as store:
        row = store.save_slack_member("T0LABA", "U0ANN", interests={"keywords": ["x"]})
    entry = Entry(id="arxiv:2603.00001", title="Low-bit quantization", url="https://x.org/1")
    digest = Digest(
        "slack-T0LABA-U0ANN.20261128T0800Z",
        slack_subscriber(row),
        datetime(2026, 11, 28, 8, 0, tzinfo=UTC),
        (DigestItem(entry, 0.9),),
    )
    settings = load_settings(str(config), {"SLACK_CLIENT_ID": "1234.5678"})
    channel = CHANNELS["slack"](settings)
    try:
        channel.send(digest)  # the token is looked up and kept
        peer.revoked.add("xoxb-lab-a")
        with pytest.raises(ChannelDownError, match="token_revoked; the workspace removed"):
            channel.send(digest)
        _install(backend_url, config, "T0LABA", "xoxb-lab-a-new")
        channel.send(digest)
    finally:
        channel.close()
    opened = [r["auth"] for r in peer.calls("conversations.open")]
    assert opened == ["Bearer xoxb-lab-a", "Bearer xoxb-lab-a", "Bearer xoxb-lab-a-new"]
    assert len(peer.posted) == 2
