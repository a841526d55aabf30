"""`/papers` over real HTTP: signed requests change the member's own subscription (keyed by team
and user), replies come before the slow part, and bad requests change nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from peers import SlackPeer
from slack_support import SINGLE, SlackApp, slack_app, wait_until

from bot.masking import mask_secrets
from bot.models import Interests
from bot.slack.commands import answer
from bot.store import Store

TOPICS = {"quantization": "Quantization", "peft": "Parameter-efficient fine-tuning"}


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with SlackPeer() as p:
        yield p


@pytest.fixture
def app(backend_url: str, peer: SlackPeer) -> Iterator[SlackApp]:
    with slack_app(backend_url, peer) as a:
        yield a


def said(store: Store, text: str, user: str = "U0ALICE", team: str = SINGLE) -> str:
    return answer(store, team, user, text, TOPICS).text


def test_a_signed_subscribe_creates_the_members_subscription(app: SlackApp) -> None:
    app.peer.zones["U0ALICE"] = "Europe/Berlin"
    r = app.command("subscribe quantization of LLMs")
    assert r.status_code == 200, r.text
    assert r.json()["response_type"] == "ephemeral"
    assert "quantization of LLMs" in r.json()["text"]
    row = app.store.slack_member(SINGLE, "U0ALICE")
    assert row is not None and row.status == "active"
    assert Interests.from_dict(row.interests).description == "quantization of LLMs"
    # After the answer: the member's Slack time zone, then a follow-up through response_url.
    wait_until(lambda: app.peer.responses)
    assert app.store.slack_member(SINGLE, "U0ALICE").zone == "Europe/Berlin"  # type: ignore[union-attr]
    (follow_up,) = app.peer.responses
    assert follow_up["text"] == (
        "Your digest comes daily at 08:00 (Europe/Berlin) — your Slack time zone."
    )
    assert follow_up["response_type"] == "ephemeral"
    assert [c["body"]["user"] for c in app.peer.calls("users.info")] == ["U0ALICE"]


def test_the_answer_comes_before_the_slow_part(app: SlackApp) -> None:
    """users.info takes 4 s: the command is answered well inside Slack's 3 s anyway."""
    app.peer.delays["users.info"] = 4.0
    start = time.monotonic()
    r = app.command("subscribe pruning")
    took = time.monotonic() - start
    assert r.status_code == 200 and took < 3.0, took
    assert not app.peer.responses  # the follow-up waits for users.info
    wait_until(lambda: app.peer.responses, timeout=15)


def test_every_subcommand_changes_only_its_part(store: Store) -> None:
    assert "/papers subscribe" in said(store, "help") and said(store, "") == said(store, "help")
    assert "no subscription yet" in said(store, "show")
    said(store, "subscribe efficient inference")
    said(store, "keywords KV cache, speculative decoding, KV cache")
    said(store, "exclude survey")
    said(store, "topics quantization, PEFT")
    said(store, "authors Tri Dao")
    said(store, "trending on")
    said(store, "schedule weekly mon 07:30")
    row = store.slack_member(SINGLE, "U0ALICE")
    assert row is not None
    i = Interests.from_dict(row.interests)
    assert i.description == "efficient inference"
    assert i.keywords == ("KV cache", "speculative decoding")
    assert (i.exclude, i.topics, i.authors, i.trending) == (
        ("survey",),
        ("quantization", "peft"),
        ("Tri Dao",),
        True,
    )
    assert (row.schedule, row.timezone) == ("30 7 * * mon", "")
    shown = said(store, "show")
    assert (
        "weekly on Mon at 07:30 (UTC)" in shown
        and "keywords: KV cache, speculative decoding" in shown
    )
    said(store, "schedule daily 18:05 Asia/Tokyo")
    said(store, "trending off")
    said(store, "keywords")  # nothing after: cleared
    row = store.slack_member(SINGLE, "U0ALICE")
    assert row is not None and (row.schedule, row.zone) == ("5 18 * * *", "Asia/Tokyo")
    assert Interests.from_dict(row.interests).keywords == ()
    assert not Interests.from_dict(row.interests).trending
    assert said(store, "pause").startswith("Paused")
    assert store.slack_member(SINGLE, "U0ALICE").status == "paused"  # type: ignore[union-attr]
    assert said(store, "resume").startswith("Resumed")
    assert said(store, "unsubscribe").startswith("Unsubscribed")
    assert store.slack_member(SINGLE, "U0ALICE").status == "unsubscribed"  # type: ignore[union-attr]
    said(store, "subscribe efficient inference again")
    assert store.slack_member(SINGLE, "U0ALICE").status == "active"  # type: ignore[union-attr]


def test_mistakes_get_one_line_with_the_fix(store: Store) -> None:
    said(store, "subscribe quantization")
    before = store.slack_member(SINGLE, "U0ALICE")
    assert said(store, "topics quantisation") == (
        "unknown topic 'quantisation' — did you mean 'quantization'? `/papers topics` lists them"
    )
    assert said(store, "topics") == "Topics you can follow: `peft`, `quantization`"
    assert "`/papers schedule daily 08:00`" in said(store, "schedule at noon")
    assert "not a time of day" in said(store, "schedule daily 25:00")
    assert "unknown time zone 'Mars/Base'" in said(store, "schedule daily 08:00 Mars/Base")
    # a folder of the tzdata, a name too long for the file system: refused the same way
    assert "unknown time zone 'Europe'" in said(store, "schedule daily 08:00 Europe")
    assert "unknown time zone" in said(store, "schedule daily 08:00 " + "Z" * 300)
    assert said(store, "trending maybe") == "write `/papers trending on` or `/papers trending off`"
    assert said(store, "subscrbe x") == (
        "unknown command 'subscrbe' — did you mean `subscribe`? `/papers help` lists them"
    )
    assert "at most 20" in said(store, "keywords " + ", ".join(f"k{n}" for n in range(21)))
    assert "say what you care about" in said(store, "subscribe")
    assert "no subscription" in said(store, "pause", user="U0NOBODY")
    assert said(store, "keywords <!channel> & co").count("&amp;") == 1  # escaped in the reply
    assert store.slack_member(SINGLE, "U0NOBODY") is None
    after = store.slack_member(SINGLE, "U0ALICE")
    assert after is not None and before is not None
    assert after.schedule == before.schedule and after.status == "active"


def test_forged_stale_replayed_unknown_and_oversized_requests_change_nothing(
    app: SlackApp,
) -> None:
    assert app.command("subscribe quantization").status_code == 200
    before = app.store.slack_member(SINGLE, "U0ALICE")
    body = b"team_id=" + SINGLE.encode() + b"&user_id=U0ALICE&text=unsubscribe"
    forged = app.signed("/slack/commands", body, secret="not-the-secret")
    stale = app.signed("/slack/commands", body, ts=int(time.time()) - 6 * 60)
    ts = int(time.time()) - 60
    first = app.signed("/slack/commands", body, ts=ts)
    assert first.status_code == 200  # genuine: the member unsubscribes …
    app.store.save_slack_member(SINGLE, "U0ALICE", status="active")  # … put back by hand
    replay = app.signed("/slack/commands", body, ts=ts)  # the same request again
    unknown = app.command("unsubscribe", team="T0STRANGER")
    huge = app.command("keywords " + "x" * 100_000)
    assert forged.status_code == 401 and "bad signature" in forged.text
    assert stale.status_code == 401 and "stale" in stale.text
    assert replay.status_code == 409 and "replayed" in replay.text
    assert unknown.status_code == 403 and "/slack/install" in unknown.text
    assert huge.status_code == 413
    after = app.store.slack_member(SINGLE, "U0ALICE")
    assert after is not None and before is not None
    assert (after.status, after.interests) == ("active", before.interests)
    assert app.store.slack_members(team_id="T0STRANGER") == []


def test_a_response_url_is_a_secret_in_logs() -> None:
    url = "https://hooks.slack.com/commands/T0SINGLE/1234567890/abcdefABCDEF123"
    assert mask_secrets(f"POST {url} failed") == "POST https://hooks.slack.com/commands/*** failed"


def test_seen_signatures_are_forgotten_once_their_timestamps_are_refused(store: Store) -> None:
    t0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert store.first_slack_request("slack:a", t0)
    assert not store.first_slack_request("slack:a", t0 + timedelta(minutes=9))  # a replay
    assert store.first_slack_request("slack:b", t0 + timedelta(minutes=11))  # forgets "a"
    assert store.first_slack_request("slack:a", t0 + timedelta(minutes=11))
    assert store.use_token("confirm-link", "confirm", t0)  # other kinds are kept
    assert store.first_slack_request("slack:c", t0 + timedelta(days=1))
    assert not store.use_token("confirm-link", "confirm")


def test_a_slack_time_zone_this_host_does_not_know_is_not_saved(
    app: SlackApp, caplog: pytest.LogCaptureFixture
) -> None:
    """users.info's `tz` becomes the member's zone only when tzdata knows it (else every plan
    would fail on `ZoneInfo`): the previous one is kept, with a warning."""
    app.peer.zones["U0ALICE"] = "Europe/Berlin"
    app.command("subscribe pruning")
    wait_until(lambda: app.peer.responses)
    app.peer.zones["U0ALICE"] = "Mars/Olympus_Mons"
    with caplog.at_level("WARNING", logger="bot.slack.routes"):
        app.command("keywords sparsity")
        wait_until(lambda: len(app.peer.calls("users.info")) == 2)
        wait_until(lambda: len(app.peer.calls("views.publish")) == 2)
    row = app.store.slack_member(SINGLE, "U0ALICE")
    assert row is not None and row.slack_timezone == "Europe/Berlin"
    assert "unknown time zone 'Mars/Olympus_Mons'" in caplog.text


def test_help_says_what_trending_does_with_and_without_interests(store: Store) -> None:
    line = next(x for x in said(store, "help").splitlines() if "trending on|off" in x)
    assert "alone: the most upvoted papers" in line
    assert "with other interests: your matches, ordered by relevance blended with upvotes" in line


def test_a_first_command_with_nothing_to_match_is_refused_with_the_fix(store: Store) -> None:
    """Exclusions, trending off or a schedule alone select nothing: no member is made (files and
    the web form refuse "nothing to match on" too); trending on alone is a subscription."""
    for text in ("exclude surveys", "trending off", "schedule daily 09:00", "keywords"):
        assert said(store, text, user="U0NEW") == (
            "tell me what you care about first: `/papers subscribe <words>`"
        ), text
    assert store.slack_member(SINGLE, "U0NEW") is None
    assert said(store, "trending on", user="U0NEW").startswith("Done.")
    row = store.slack_member(SINGLE, "U0NEW")
    assert row is not None and row.status == "active"
    assert said(store, "exclude surveys", user="U0NEW").startswith("Done.")  # a member now


def test_a_schedule_that_cannot_be_read_is_echoed_escaped(store: Store) -> None:
    """The member's text comes back inside the fix: `<!here>` or a `<url|label>` stay text."""
    said(store, "subscribe quantization")
    reply = said(store, "schedule <!here> at <https://x.example|y> & co")
    assert (
        "cannot read the schedule '&lt;!here&gt; at &lt;https://x.example|y&gt; &amp; co'" in reply
    )
    assert "<" not in reply.replace("`", "")
    zone = said(store, "schedule daily 08:00 <!here>")
    assert "unknown time zone '&lt;!here&gt;'" in zone and "<!" not in zone


def test_phrases_are_cleaned_and_limited_as_the_web_forms_do(store: Store) -> None:
    from bot import interest_input  # the web form reads interests with the same rules

    said(store, "subscribe pruning")
    said(store, "keywords KV cache, kv   cache, Flash Attention")
    row = store.slack_member(SINGLE, "U0ALICE")
    assert row is not None
    assert (
        Interests.from_dict(row.interests).keywords
        == interest_input.phrases("KV cache, kv   cache, Flash Attention")
        == ("KV cache", "Flash Attention")
    )
    too_many = ", ".join(f"k{n}" for n in range(interest_input.MAX_PHRASES + 1))
    assert f"at most {interest_input.MAX_PHRASES} phrases" in said(store, "keywords " + too_many)
    assert "longer than" in said(store, "authors " + "x" * (interest_input.MAX_PHRASE + 1))
    long = "y" * (interest_input.MAX_DESCRIPTION + 1)
    assert (
        said(store, "subscribe " + long)
        == f"keep it under {interest_input.MAX_DESCRIPTION} characters"
    )
