"""The Slack channel against a local HTTP server speaking Slack's Web API, with Slack's real bodies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from _digests import NASTY, digest, subscriber
from peers import Reply, SlackPeer
from slack_sdk import WebClient
from test_render import check_slack_limits

from bot.channels import CHANNELS, channel_for
from bot.channels.slack import Slack
from bot.config import Settings
from bot.errors import ChannelDownError, PermanentSendError, TransientSendError

SLACK_SUB = subscriber(email="", slack_channel="#papers")


def settings_for(server: SlackPeer, **kw: object) -> Settings:
    env = {"SLACK_WEBHOOK_PAPERS": server.webhook_url}
    return replace(
        Settings(
            base_url="https://digest.example.org",
            secret_key="k",
            slack_token="xoxb-test",
            slack_api_url=server.url,
            environ=env,
        ),
        **kw,
    )  # type: ignore[arg-type]


def test_posts_block_kit_with_the_digest_id_in_metadata(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    s = settings_for(slack_server)
    assert channel_for(SLACK_SUB, s) == "slack"
    ch = CHANNELS["slack"](s)
    d = digest(3, sub=SLACK_SUB)
    receipt = ch.send(d)
    (call,) = slack_server.calls("chat.postMessage")
    body = call["body"]
    assert call["auth"] == "Bearer xoxb-test"
    assert body["channel"] == "#papers"
    assert body["metadata"] == {
        "event_type": "digestbot_digest",
        "event_payload": {"digest_id": d.id, "part": 1, "parts": 1},
    }
    check_slack_limits(body)
    assert body["blocks"][0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "emoji": True,
            "text": "3 new papers on efficient inference, Mon 02 Mar 2026",
        },
    }
    assert receipt.detail == slack_server.posted[0]["ts"] and receipt.destination == "#papers"


def test_a_200_item_digest_is_threaded_under_the_first_message_one_per_second(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    d = digest(200, sub=SLACK_SUB)
    Slack(settings_for(slack_server)).send(d)
    calls = slack_server.calls("chat.postMessage")
    assert len(calls) == 13
    first_ts = slack_server.posted[0]["ts"]
    assert "thread_ts" not in calls[0]["body"]
    assert all(c["body"]["thread_ts"] == first_ts for c in calls[1:])
    assert all(
        c["body"]["channel"] == "C0PAPERS01" for c in calls[1:]
    )  # replies go to the id Slack answered
    for i, c in enumerate(calls, 1):
        check_slack_limits(c["body"])
        assert c["body"]["metadata"]["event_payload"] == {"digest_id": d.id, "part": i, "parts": 13}
    items = [b for c in calls for b in c["body"]["blocks"] if b["type"] == "section"]
    assert len(items) == 200
    assert send_clock == [pytest.approx(1.0)] * 12  # at most one message a second in the channel


@pytest.mark.slow
def test_ratelimited_waits_retry_after_then_posts(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    slack_server.script["chat.postMessage"] = [
        Reply.fixture("chat.postMessage__error_ratelimited__HTTP429_python-slack-sdk-mock.http")
    ]
    import time

    start = time.monotonic()
    Slack(settings_for(slack_server)).send(digest(2, sub=SLACK_SUB))
    waited = time.monotonic() - start
    assert len(slack_server.calls("chat.postMessage")) == 2  # one 429, one retry
    assert waited >= 1.0  # Retry-After: 1


@pytest.mark.parametrize(
    ("fixture", "fix", "kind"),
    [
        (
            "chat.postMessage__error_channel_not_found__issue.json",
            (
                "Slack refused the post to #papers: channel_not_found; check slack_channel in the subscription file, "
                "and invite the bot to that channel (/invite @yourbot)"
            ),
            PermanentSendError,
        ),
        (  # the token, not the channel: every post with it waits for the fix (ChannelDownError)
            "chat.postMessage__error_invalid_auth__python-slack-sdk-mock.json",
            "Slack refused SLACK_BOT_TOKEN: invalid_auth; check SLACK_BOT_TOKEN (a bot token starting xoxb-)",
            ChannelDownError,
        ),
    ],
)
def test_permanent_errors_fail_at_once_and_say_the_fix(
    slack_server: SlackPeer, send_clock: list[float], fixture: str, fix: str, kind: type
) -> None:
    slack_server.script["chat.postMessage"] = [Reply.fixture(fixture)]
    with pytest.raises(PermanentSendError) as e:
        Slack(settings_for(slack_server)).send(digest(2, sub=SLACK_SUB))
    assert str(e.value) == fix and type(e.value) is kind
    assert len(slack_server.calls("chat.postMessage")) == 1  # not retried


def test_not_in_channel_says_invite_the_bot(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    slack_server.script["chat.postMessage"] = [
        Reply(200, b'{"ok": false, "error": "not_in_channel"}')
    ]
    with pytest.raises(PermanentSendError, match=r"not_in_channel; invite the bot to the channel"):
        Slack(settings_for(slack_server)).send(digest(1, sub=SLACK_SUB))


def test_msg_blocks_too_long_falls_back_to_plain_text(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    slack_server.script["chat.postMessage"] = [
        Reply.fixture("chat.postMessage__error_msg_blocks_too_long__issue.json")
    ]
    d = digest(2, sub=SLACK_SUB)
    Slack(settings_for(slack_server)).send(d)
    first, second = slack_server.calls("chat.postMessage")
    assert "blocks" in first["body"] and "blocks" not in second["body"]
    assert second["body"]["text"].startswith("2 new papers")
    assert "Low-bit quantization of vision transformers, part 1" in second["body"]["text"]
    assert second["body"]["metadata"]["event_payload"]["digest_id"] == d.id


@pytest.mark.slow
def test_the_plain_text_fallback_does_not_ping_anyone_from_a_feed_title(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    """Only the header block is plain text; in `text` (mrkdwn) a title's <!channel> would ping."""
    slack_server.script["chat.postMessage"] = [
        Reply.fixture("chat.postMessage__error_msg_blocks_too_long__issue.json")
    ]
    d = digest(1, sub=SLACK_SUB, titles=["<!channel> <@U024BE7LH> urgent & now"])
    d = replace(d, items=tuple(replace(i, topic="") for i in d.items))
    Slack(settings_for(slack_server)).send(d)
    text = slack_server.calls("chat.postMessage")[1]["body"]["text"]
    assert text.startswith("1 new paper: &lt;!channel&gt; &lt;@U024BE7LH&gt; urgent &amp; now")
    assert "<!channel>" not in text and "<@U024BE7LH>" not in text


def test_a_long_plain_text_fallback_is_cut_where_no_link_breaks(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    slack_server.script["chat.postMessage"] = [
        Reply.fixture("chat.postMessage__error_msg_blocks_too_long__issue.json")
    ]
    Slack(settings_for(slack_server)).send(digest(12, sub=SLACK_SUB, titles=["R&D " * 70] * 12))
    text = slack_server.calls("chat.postMessage")[1]["body"]["text"]
    assert len(text) <= 3900 and text.endswith("…")
    assert text.count("<") == text.count(">")  # every link whole
    assert "&amp…" not in text and not text.endswith("&…")


def test_5xx_and_dropped_connections_are_retried(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    slack_server.script["chat.postMessage"] = [
        Reply(503, b"upstream down", {"content-type": "text/plain"}),
        Reply(drop=True),
    ]
    Slack(settings_for(slack_server)).send(digest(1, sub=SLACK_SUB))
    assert len(slack_server.calls("chat.postMessage")) == 3
    assert len(slack_server.posted) == 1


@pytest.mark.slow
def test_5xx_that_persists_is_transient(slack_server: SlackPeer, send_clock: list[float]) -> None:
    slack_server.script["chat.postMessage"] = [
        Reply(500, b'{"ok": false, "error": "fatal_error"}')
    ] * 3
    with pytest.raises(TransientSendError, match="Slack answered 500 fatal_error; will retry"):
        Slack(settings_for(slack_server)).send(digest(1, sub=SLACK_SUB))
    assert len(slack_server.calls("chat.postMessage")) == 3  # the first try and two retries


@pytest.mark.slow
def test_a_retry_after_a_partial_thread_goes_on_where_it_stopped(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    d = digest(40, sub=SLACK_SUB)  # three messages
    ch = Slack(settings_for(slack_server))
    # The second message meets a persistent 5xx; the pipeline's retry then sends the rest once.
    orig = slack_server._default
    calls = {"n": 0}

    def flaky(
        method: str, body: dict[str, object], token: str = "", basic: tuple[str, ...] = ()
    ) -> Reply:
        if method == "chat.postMessage":
            calls["n"] += 1
            if calls["n"] in (2, 3, 4):
                return Reply(502, b"bad gateway", {"content-type": "text/plain"})
        return orig(method, body, token, basic)

    slack_server._default = flaky  # type: ignore[method-assign]
    with pytest.raises(TransientSendError):
        ch.send(d)
    ch.send(d)
    assert [p["metadata"]["event_payload"]["part"] for p in slack_server.posted] == [1, 2, 3]
    assert slack_server.posted[2]["thread_ts"] == slack_server.posted[0]["ts"]


def test_untrusted_titles_are_escaped_in_what_slack_receives(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    Slack(settings_for(slack_server)).send(digest(3, sub=SLACK_SUB, titles=NASTY))
    blocks = slack_server.calls("chat.postMessage")[0]["body"]["blocks"]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert "|&lt;script&gt;alert('x')&lt;/script&gt; Attention &amp; Friends>*" in sections[0]
    assert "Fast &amp; &lt;b&gt;Bold&lt;/b&gt; Quantization" in sections[1]
    assert "<script" not in str(blocks) and "<b>" not in str(blocks)


def test_already_delivered_finds_the_digest_id_in_channel_history(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    ch = Slack(settings_for(slack_server))
    d = digest(2, sub=SLACK_SUB)
    assert ch.already_delivered(d) is False
    ch.send(d)
    assert ch.already_delivered(d) is True
    assert ch.already_delivered(digest(2, sub=SLACK_SUB, did="alice.other")) is False
    (hist, *_) = slack_server.calls("conversations.history")
    assert hist["body"]["channel"] == "C0PAPERS01" and hist["body"]["include_all_metadata"] in (
        "1",
        "true",
        "True",
    )
    assert len(slack_server.calls("conversations.list")) == 1  # the name is looked up once


def test_a_thread_cut_short_is_not_delivered_and_send_posts_only_the_missing_parts(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    """Part 3 of 3 failed, a member replied in the thread, the process restarted: the thread is
    read (every page of conversations.replies) and only part 3 is posted, in that thread."""
    d = digest(40, sub=SLACK_SUB)
    bad = Reply(502, b"bad gateway", {"content-type": "text/plain"})
    slack_server.script["chat.postMessage"] = [None, None, bad, bad, bad]
    with pytest.raises(TransientSendError):
        Slack(settings_for(slack_server)).send(d)
    top = slack_server.posted[0]["ts"]
    WebClient(token="xoxp-member", base_url=slack_server.url).chat_postMessage(
        channel="C0PAPERS01", thread_ts=top, text="thanks!"
    )  # a person's reply: not a part
    slack_server.replies_max = 1  # one message a page: the cursor is followed
    ch = Slack(settings_for(slack_server))  # after a restart: nothing in memory
    assert ch.already_delivered(d) is False
    assert len(slack_server.calls("conversations.replies")) == 3  # parts 1, 2 and the reply
    receipt = ch.send(d)
    ours = [p for p in slack_server.posted if p["metadata"]]
    assert [p["metadata"]["event_payload"]["part"] for p in ours] == [1, 2, 3]
    assert [p["thread_ts"] for p in ours] == [None, top, top] and receipt.detail == top
    assert Slack(settings_for(slack_server)).already_delivered(d) is True
    assert (
        Slack(settings_for(slack_server)).already_delivered(digest(40, sub=SLACK_SUB, did="x"))
        is False
    )


def test_already_delivered_with_a_bad_token_says_the_fix(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    slack_server.script["conversations.history"] = [
        Reply.fixture("chat.postMessage__error_invalid_auth__python-slack-sdk-mock.json")
    ]
    ch = Slack(settings_for(slack_server))
    with pytest.raises(PermanentSendError, match="invalid_auth; check SLACK_BOT_TOKEN"):
        ch.already_delivered(digest(1, sub=subscriber(email="", slack_channel="C0PAPERS01")))


# --- incoming webhooks -------------------------------------------------------------------------------

HOOK_SUB = subscriber(email="", slack_webhook_env="SLACK_WEBHOOK_PAPERS")


def test_webhook_posts_each_message_and_checks_ok(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    s = settings_for(slack_server, slack_token="")
    assert channel_for(HOOK_SUB, s) == "slack"
    receipt = Slack(s).send(digest(20, sub=HOOK_SUB))
    calls = slack_server.calls("webhook")
    assert len(calls) == 2 and receipt.destination == "$SLACK_WEBHOOK_PAPERS"
    for c in calls:
        check_slack_limits(c["body"])
    assert calls[0]["body"]["metadata"]["event_payload"]["digest_id"] == "alice.20260302T0700Z"


def test_webhook_rate_limited_body_is_retried(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    slack_server.script["webhook"] = [
        Reply.fixture("incoming-webhook__error_rate_limited__HTTP429_body__issue.json", status=429)
    ]
    Slack(settings_for(slack_server)).send(digest(1, sub=HOOK_SUB))
    assert len(slack_server.calls("webhook")) == 2


def test_webhook_error_answer_fails_with_the_fix_and_hides_the_url(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    slack_server.script["webhook"] = [Reply(404, b"no_service", {"content-type": "text/html"})]
    with pytest.raises(PermanentSendError) as e:
        Slack(settings_for(slack_server)).send(digest(1, sub=HOOK_SUB))
    assert str(e.value) == (
        "the Slack webhook in $SLACK_WEBHOOK_PAPERS answered 404 no_service; "
        "check the webhook URL in $SLACK_WEBHOOK_PAPERS (Slack app → Incoming Webhooks)"
    )
    assert slack_server.webhook_url not in str(e.value)


def test_webhook_200_without_ok_is_not_a_success(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    slack_server.script["webhook"] = [Reply(200, b"invalid_payload", {"content-type": "text/html"})]
    with pytest.raises(PermanentSendError, match="answered 200 invalid_payload"):
        Slack(settings_for(slack_server)).send(digest(1, sub=HOOK_SUB))


def test_outbox_json_is_what_slack_would_get(tmp_path: Path, slack_server: SlackPeer) -> None:
    import json

    s = replace(settings_for(slack_server, slack_token=""), outbox_dir=tmp_path, environ={})
    sub = subscriber(email="", slack_channel="#papers")
    assert channel_for(sub, s) == "outbox"
    CHANNELS["outbox"](s).send(digest(40, sub=sub))
    data = json.loads((tmp_path / "alice" / "alice.20260302T0700Z.json").read_text())
    assert data["channel"] == "#papers" and len(data["thread"]) == 2
    assert data["metadata"]["event_payload"]["digest_id"] == "alice.20260302T0700Z"
    for m in [data, *data["thread"]]:
        check_slack_limits(m)


def test_a_429_that_outlasts_the_sdk_retries_tells_the_pipeline_how_long_to_wait() -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web import SlackResponse

    from bot.channels.slack import _classify

    resp = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="chat.postMessage",
        req_args={},
        data={"ok": False, "error": "ratelimited"},
        headers={"retry-after": "7"},
        status_code=429,
    )
    err = _classify(SlackApiError("ratelimited", resp), "#papers")
    assert (
        isinstance(err, TransientSendError)
        and str(err) == "Slack answered 429 ratelimited; will retry"
    )
    assert err.retry_after == 7.0  # type: ignore[attr-defined]


def test_the_one_per_second_limit_holds_across_digests_and_channel_instances(
    slack_server: SlackPeer, send_clock: list[float]
) -> None:
    s = settings_for(slack_server)
    Slack(s).send(digest(1, sub=SLACK_SUB, did="a"))
    Slack(s).send(digest(1, sub=SLACK_SUB, did="b"))  # a new instance, the same channel: waits
    Slack(s).send(
        digest(1, sub=subscriber(email="", slack_channel="#other"), did="c")
    )  # another channel: no wait
    assert send_clock == [pytest.approx(1.0)]
    assert len(slack_server.calls("chat.postMessage")) == 3


def test_a_webhook_variable_outside_the_prefix_is_never_read() -> None:
    """A subscriber cannot have another variable (a password) posted to as a webhook URL."""
    sub = subscriber(email="", slack_webhook_env="DIGESTBOT_SMTP_PASSWORD")
    s = Settings(environ={"DIGESTBOT_SMTP_PASSWORD": "https://hooks.example.org/hunter2"})
    assert not Slack.ready(sub, s)  # the variable is not a webhook's: never read


def test_a_webhook_variable_without_a_url_fails_without_echoing_it(send_clock: list[float]) -> None:
    s = Settings(environ={"SLACK_WEBHOOK_PAPERS": "hunter2-not-a-url"})
    with pytest.raises(PermanentSendError) as e:
        Slack(s).send(digest(1, sub=HOOK_SUB))
    assert str(e.value) == (
        "$SLACK_WEBHOOK_PAPERS does not hold a webhook URL; set it to the URL Slack gives "
        "(https://hooks.slack.com/services/…, Slack app → Incoming Webhooks)"
    )
