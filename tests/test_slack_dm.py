"""A Slack member's digest goes to their DM with the app (conversations.open, chat.postMessage)
through the same ledger: once per slot, found again after a crash, paused when they pause, and
Slack's errors fail that member's digest with the fix while the others go out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner, Result
from peers import SlackPeer
from slack_support import SINGLE, slack_app, wait_until

from bot.channels import CHANNELS, channel_for, not_ready
from bot.cli import cli
from bot.config import Settings
from bot.errors import PermanentSendError
from bot.models import Digest, DigestItem, Entry, Interests
from bot.roster import load_roster
from bot.slack.members import slack_subscriber
from bot.store import Store

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with SlackPeer() as p:
        yield p


ITEM = """<item><title>{title}</title><link>https://arxiv.org/abs/{n}</link>
<description>A post-training quantization method for large language models: {title}.</description>
<guid isPermaLink="false">oai:arXiv.org:{n}v1</guid><pubDate>{date}</pubDate></item>"""


def feed(path: Path, *papers: tuple[str, str, datetime]) -> None:
    """A small RSS feed of quantization papers (title, arXiv id, date)."""
    items = "".join(
        ITEM.format(title=t, n=n, date=d.strftime("%a, %d %b %Y %H:%M:%S +0000"))
        for t, n, d in papers
    )
    path.write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>',
        encoding="utf-8",
    )


def project(tmp_path: Path, db_url: str, peer: SlackPeer, source: Path | None = None) -> Path:
    """A digestbot folder with no subscription files: only Slack members will get digests."""
    (tmp_path / "subscriptions").mkdir(exist_ok=True)
    config = tmp_path / "digestbot.toml"
    config.write_text(
        f'database_url = "{db_url}"\nbase_url = "https://digest.example.org"\n'
        f'subscriptions_dir = "subscriptions"\n[slack]\napi_url = "{peer.url}"\n'
        f'[[sources]]\nname = "examples"\ntype = "file"\n'
        f'path = "{source or ROOT / "examples" / "papers.xml"}"\n',
        encoding="utf-8",
    )
    return config


def run_once(config: Path, when: datetime = NOW) -> Result:
    env = {"SLACK_BOT_TOKEN": "xoxb-single", "DIGESTBOT_SECRET_KEY": "k"}
    with time_machine.travel(when, tick=True):
        return CliRunner().invoke(cli, ["--config", str(config), "run", "--once"], env=env)


def dms(peer: SlackPeer) -> list[str]:
    """The channels of the first message of each digest posted."""
    return [p["channel"] for p in peer.posted if not p["thread_ts"]]


def test_subscribe_then_run_posts_one_dm_then_nothing_and_pause_stops_it(
    tmp_path: Path, backend_url: str, peer: SlackPeer
) -> None:
    papers = tmp_path / "papers.xml"
    day1 = ("QuickQuant: 4-bit quantization of LLMs", "2611.01001", NOW - timedelta(hours=6))
    feed(papers, day1)
    config = project(tmp_path, backend_url, peer, papers)
    with slack_app(backend_url, peer) as app:
        assert app.command("subscribe quantization of LLMs").status_code == 200
        wait_until(lambda: peer.responses)  # users.info done: the member's time zone is known
    first = run_once(config)
    assert first.exit_code == 0, first.output
    (opened,) = peer.calls("conversations.open")
    assert opened["body"]["users"] == "U0ALICE" and opened["auth"] == "Bearer xoxb-single"
    dm = "D0SIN0ALICE"  # the peer's DM channel for (T0SINGLE, U0ALICE)
    assert dms(peer) == [dm]
    meta = peer.posted[0]["metadata"]
    assert meta["event_type"] == "digestbot_digest"
    # 08:00 in the member's Slack time zone (users.info: the peer says America/Los_Angeles).
    assert meta["event_payload"]["digest_id"] == f"slack-{SINGLE}-U0ALICE.20261127T1600Z"
    again = run_once(config)
    assert again.exit_code == 0, again.output
    assert dms(peer) == [dm]  # the same slot: nothing more
    with slack_app(backend_url, peer) as app:
        assert app.command("pause").status_code == 200
    day2 = ("SlowQuant: 3-bit quantization of LLMs", "2611.02002", NOW + timedelta(hours=18))
    feed(papers, day1, day2)  # a new paper for the next day's digest
    run_once(config, NOW + timedelta(days=1))
    assert dms(peer) == [dm]  # paused: the next day's digest is not sent
    with slack_app(backend_url, peer) as app:
        assert app.command("resume").status_code == 200
    resumed = run_once(config, NOW + timedelta(days=1))
    assert dms(peer) == [dm, dm], resumed.output  # resumed: it is


def test_a_slack_error_fails_that_members_digest_with_the_fix_and_not_the_others(
    tmp_path: Path, backend_url: str, peer: SlackPeer
) -> None:
    config = project(tmp_path, backend_url, peer)
    with slack_app(backend_url, peer) as app:
        for user in ("U0ALICE", "U0GONE", "U0BOB"):
            assert app.command("subscribe quantization", user=user).status_code == 200
    peer.dm_errors["U0GONE"] = "user_not_found"
    result = run_once(config)
    assert sorted(dms(peer)) == ["D0SIN0ALICE", "D0SIN0BOB"]
    with Store(backend_url) as store:
        (gone,) = store.history(f"slack-{SINGLE}-U0GONE")
        assert gone.status == "failed"
        assert "user_not_found" in gone.reason and "no longer in the workspace" in gone.reason
        assert [r.status for r in store.history(f"slack-{SINGLE}-U0BOB")] == ["sent"]
    assert result.exit_code == 1
    assert (
        f"slack-{SINGLE}-U0GONE: FAILED: Slack refused the post to the DM with U0GONE in {SINGLE}: "
        "user_not_found; the member is no longer in the workspace"
    ) in result.output


def _member_digest(store: Store, user: str) -> Digest:
    store.save_slack_member(SINGLE, user, interests={"keywords": ["x"]})
    row = store.slack_member(SINGLE, user)
    assert row is not None
    entry = Entry(
        id="arxiv:2603.00001", title="Low-bit quantization", url="https://arxiv.org/abs/2603.00001"
    )
    return Digest(
        id=f"slack-{SINGLE}-{user}.20261128T0800Z",
        subscriber=slack_subscriber(row),
        slot=datetime(2026, 11, 28, 8, 0, tzinfo=UTC),
        items=(DigestItem(entry, 0.9),),
    )


def _settings(backend_url: str, peer: SlackPeer) -> Settings:
    return Settings(
        database_url=backend_url,
        base_url="https://digest.example.org",
        secret_key="k",
        slack_token="xoxb-single",
        slack_api_url=peer.url,
    )


def test_after_a_crash_the_dm_history_tells_it_was_delivered(
    backend_url: str, peer: SlackPeer, send_clock: list[float]
) -> None:
    settings = _settings(backend_url, peer)
    with Store(backend_url) as store:
        digest = _member_digest(store, "U0ALICE")
        other = _member_digest(store, "U0BOB")
    assert channel_for(digest.subscriber, settings) == "slack"
    sender = CHANNELS["slack"](settings)
    sender.send(digest)
    sender.close()
    fresh = CHANNELS["slack"](settings)  # a new process after the crash
    assert fresh.already_delivered(digest)
    assert not fresh.already_delivered(other)
    (history, *_) = peer.calls("conversations.history")
    assert history["body"]["channel"] == "D0SIN0ALICE"
    fresh.close()


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (
            "account_inactive",
            "reinstall digestbot there (https://digest.example.org/slack/install)",
        ),
        ("user_not_found", "the member is no longer in the workspace"),
        ("cannot_dm_bot", "the member is a bot, which cannot receive direct messages"),
        (
            "not_authed",
            "install digestbot there (https://digest.example.org/slack/install) or set SLACK_BOT_TOKEN",
        ),
    ],
)
def test_slack_api_errors_say_the_fix(
    backend_url: str, peer: SlackPeer, send_clock: list[float], code: str, fix: str
) -> None:
    settings = _settings(backend_url, peer)
    with Store(backend_url) as store:
        digest = _member_digest(store, "U0ALICE")
    peer.dm_errors["U0ALICE"] = code
    sender = CHANNELS["slack"](settings)
    with pytest.raises(PermanentSendError) as e:
        sender.send(digest)
    sender.close()
    assert code in str(e.value) and fix in str(e.value)
    assert "xoxb-" not in str(e.value)
    assert peer.posted == []


def test_slack_members_join_the_roster_in_their_time_zone(store: Store) -> None:
    store.save_slack_member(
        SINGLE, "U0ALICE", interests={"description": "pruning"}, slack_timezone="Asia/Tokyo"
    )
    store.save_slack_member(SINGLE, "U0PAUSED", status="paused")
    store.save_slack_member(
        "T0OTHER", "U0ALICE", timezone="Europe/Paris", slack_timezone="Asia/Tokyo"
    )
    subs, _ = load_roster(Settings(subscriptions_dir=Path("/nonexistent")), store)
    got = {s.id: s for s in subs}
    assert set(got) == {f"slack-{SINGLE}-U0ALICE", "slack-T0OTHER-U0ALICE"}
    assert got[f"slack-{SINGLE}-U0ALICE"].timezone == "Asia/Tokyo"
    assert got["slack-T0OTHER-U0ALICE"].timezone == "Europe/Paris"  # set by the member: wins
    assert got[f"slack-{SINGLE}-U0ALICE"].interests == Interests(description="pruning")
    assert got[f"slack-{SINGLE}-U0ALICE"].origin == "slack"


def test_status_history_and_check_show_slack_members(
    tmp_path: Path, backend_url: str, peer: SlackPeer
) -> None:
    config = project(tmp_path, backend_url, peer)
    with slack_app(backend_url, peer) as app:
        app.command("subscribe quantization")
        app.command("subscribe pruning", user="U0BOB")
        app.command("pause", user="U0BOB")
    run_once(config)
    env = {"SLACK_BOT_TOKEN": "xoxb-single", "DIGESTBOT_SECRET_KEY": "k"}
    status = CliRunner().invoke(cli, ["--config", str(config), "status"], env=env)
    assert status.exit_code == 0, status.output
    assert f"slack-{SINGLE}-U0ALICE  {SINGLE}:U0ALICE" in status.output
    assert "(slack, active)" in status.output and "(slack, paused)" in status.output
    history = CliRunner().invoke(
        cli, ["--config", str(config), "history", f"slack-{SINGLE}-U0ALICE"], env=env
    )
    assert history.exit_code == 0 and "sent" in history.output, history.output
    never = CliRunner().invoke(
        cli, ["--config", str(config), "history", f"slack-{SINGLE}-U0BOB"], env=env
    )
    assert never.exit_code == 0 and "nothing sent yet" in never.output, never.output
    check = CliRunner().invoke(cli, ["--config", str(config), "check"], env=env)
    assert "1 from Slack" in check.output and "1 paused" in check.output, check.output


def test_a_dm_posted_before_a_crash_is_found_and_not_posted_again(
    tmp_path: Path, backend_url: str, peer: SlackPeer
) -> None:
    """The crashed process claimed the digest, posted it to the DM and died before confirming:
    the next run finds the digest id in the DM's message metadata and only confirms it."""
    papers = tmp_path / "papers.xml"
    feed(
        papers, ("QuickQuant: 4-bit quantization of LLMs", "2611.01001", NOW - timedelta(hours=30))
    )
    config = project(tmp_path, backend_url, peer, papers)
    with slack_app(backend_url, peer) as app:
        assert app.command("subscribe quantization of LLMs").status_code == 200
        wait_until(lambda: peer.responses)
    slot = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # 08:00 in America/Los_Angeles
    entry = Entry(id="arxiv:2611.01001", title="QuickQuant", url="https://arxiv.org/abs/2611.01001")
    with Store(backend_url) as store:
        row = store.slack_member(SINGLE, "U0ALICE")
        assert row is not None
        sub = slack_subscriber(row)
        store.upsert_entries([entry])
        claimed = store.claim(
            sub.id,
            slot,
            [DigestItem(entry, 0.9)],
            "slack",
            owner="gone-host:4242",
            lease=timedelta(seconds=1),
            now=NOW - timedelta(hours=1),
        )
    assert claimed is not None
    crashed = CHANNELS["slack"](_settings(backend_url, peer))
    crashed.send(Digest(claimed.digest_id, sub, slot, tuple(claimed.items)))
    crashed.close()
    assert dms(peer) == ["D0SIN0ALICE"]
    result = run_once(config)
    assert result.exit_code == 0, result.output
    assert dms(peer) == ["D0SIN0ALICE"]  # found in the DM's history: not posted again
    assert [c["body"]["channel"] for c in peer.calls("conversations.history")] == ["D0SIN0ALICE"]
    with Store(backend_url) as store:
        assert [(r.id, r.status) for r in store.history(sub.id)] == [(claimed.digest_id, "sent")]


def test_a_stored_zone_this_host_does_not_know_falls_back_to_utc(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """One member's unknown zone (saved before it was checked, or tzdata older than Slack's)
    plans them in UTC with a warning; the others keep theirs."""
    store.save_slack_member(SINGLE, "U0BAD", interests={"keywords": ["x"]}, slack_timezone="Mars/X")
    store.save_slack_member(
        SINGLE, "U0OK", interests={"keywords": ["x"]}, slack_timezone="Asia/Tokyo"
    )
    with caplog.at_level("WARNING", logger="bot.zones"):
        subs, _ = load_roster(Settings(subscriptions_dir=Path("/nonexistent")), store)
    got = {s.id: s.timezone for s in subs}
    assert got == {f"slack-{SINGLE}-U0BAD": "UTC", f"slack-{SINGLE}-U0OK": "Asia/Tokyo"}
    assert "unknown time zone 'Mars/X'" in caplog.text and "using UTC" in caplog.text


def test_check_counts_slack_members_no_token_reaches_in_one_line(
    tmp_path: Path, backend_url: str, peer: SlackPeer
) -> None:
    """Members (origin "slack") with neither SLACK_BOT_TOKEN nor SLACK_CLIENT_ID: `run` would
    leave every digest of theirs waiting; `check` says so once, counting them, with the same
    reason and fix `not_ready` gives at run time."""
    config = project(tmp_path, backend_url, peer)
    with Store(backend_url) as store:
        for user in ("U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"):
            store.save_slack_member(SINGLE, user, interests={"keywords": ["quantization"]})
        store.save_slack_member(SINGLE, "U0PAUSED", status="paused")  # receives nothing
        member = slack_subscriber(store.slack_members()[0])
    unset: dict[str, str | None] = {"SLACK_BOT_TOKEN": None, "SLACK_CLIENT_ID": None}
    env = {**unset, "DIGESTBOT_SECRET_KEY": "k"}
    check = CliRunner().invoke(cli, ["--config", str(config), "check"], env=env)
    assert check.exit_code == 1
    why = (
        "Slack direct messages need SLACK_BOT_TOKEN, or SLACK_CLIENT_ID and the app installed; "
        f'set it, or write outbox_dir = "outbox" in {config} to have such digests written to '
        "files instead"
    )
    ids = ", ".join(f"slack-{SINGLE}-{u}" for u in ("U0ALICE", "U0BOB", "U0CAROL"))
    assert check.output.splitlines() == [
        f"4 Slack members ({ids}…): {why}",
        (
            "1 problem found; 4 subscribers (0 from files, 0 from the web, 4 from Slack; "
            "not receiving: 1 paused): 4 would wait on a channel."
        ),
    ]
    settings = Settings(config_path=config, environ={})
    assert not_ready(channel_for(member, settings), member, settings) == (
        f"not sent: {why}; the digest waits for the next run"
    )
    for fix in ({"SLACK_BOT_TOKEN": "xoxb-single"}, {"SLACK_CLIENT_ID": "1.2"}):
        ok = CliRunner().invoke(cli, ["--config", str(config), "check"], env={**env, **fix})
        assert (ok.exit_code, "No problems" in ok.output) == (0, True), ok.output
