"""App Home through the Events API: the url_verification challenge, the member's settings
published when they open the app, its buttons (pause, resume, unsubscribe) and the edit modal."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from peers import SlackPeer
from slack_support import SINGLE, SlackApp, slack_app, wait_until

from bot.models import Interests
from bot.slack.home import _sections

USER = "U0ALICE"


@pytest.fixture
def app(backend_url: str) -> Iterator[SlackApp]:
    with SlackPeer() as peer, slack_app(backend_url, peer) as a:
        yield a


def opened(app: SlackApp) -> dict[str, Any]:
    """Open the Home tab; the view views.publish got for it."""
    seen = len(app.peer.views)
    r = app.event(
        {
            "type": "event_callback",
            "team_id": SINGLE,
            "event_id": f"Ev{time.monotonic_ns()}",  # each event its own (a replay is refused)
            "event_time": int(time.time()),
            "event": {"type": "app_home_opened", "user": USER, "tab": "home"},
        }
    )
    assert r.status_code == 200
    wait_until(lambda: len(app.peer.views) > seen)
    call = app.peer.views[-1]
    assert call["method"] == "views.publish" and call["user_id"] == USER
    view: dict[str, Any] = call["view"]
    return view


def texts(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def buttons(view: dict[str, Any]) -> list[str]:
    return [e["action_id"] for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]


def click(app: SlackApp, action: str) -> None:
    seen = len(app.peer.views)
    payload = {
        "type": "block_actions",
        "team": {"id": SINGLE},
        "user": {"id": USER, "team_id": SINGLE},
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "view": {"type": "home"},
        "actions": [{"action_id": action, "type": "button"}],
    }
    assert app.interact(payload).status_code == 200
    wait_until(lambda: len(app.peer.views) > seen)


def test_url_verification_answers_the_challenge_only_when_signed(app: SlackApp) -> None:
    body = {
        "type": "url_verification",
        "token": "x",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
    }
    r = app.event(body)
    assert r.status_code == 200 and r.json() == {"challenge": body["challenge"]}
    forged = app.signed(
        "/slack/events", json.dumps(body).encode(), secret="wrong", content_type="application/json"
    )
    assert forged.status_code == 401


def test_app_home_shows_the_members_settings_and_its_buttons_work(app: SlackApp) -> None:
    assert "You have no subscription yet" in texts(opened(app))
    app.command("subscribe quantization of LLMs")
    app.command("keywords KV cache, <b>bold</b>")
    wait_until(lambda: len(app.peer.calls("views.publish")) == 3)  # the commands' after-work
    view = opened(app)
    assert view["type"] == "home"
    shown = texts(view)
    assert "quantization of LLMs" in shown and "daily at 08:00" in shown
    assert "KV cache, &lt;b&gt;bold&lt;/b&gt;" in shown  # escaped for mrkdwn
    assert "Last digest: none yet" in shown
    assert buttons(view) == [
        "digestbot_home_edit",
        "digestbot_home_pause",
        "digestbot_home_unsubscribe",
    ]
    click(app, "digestbot_home_pause")
    assert app.store.slack_member(SINGLE, USER).status == "paused"  # type: ignore[union-attr]
    assert "digestbot_home_resume" in buttons(app.peer.views[-1]["view"])
    click(app, "digestbot_home_resume")
    assert app.store.slack_member(SINGLE, USER).status == "active"  # type: ignore[union-attr]
    click(app, "digestbot_home_unsubscribe")
    assert app.store.slack_member(SINGLE, USER).status == "unsubscribed"  # type: ignore[union-attr]


def test_long_interests_fit_slacks_limits_and_app_home_still_updates(app: SlackApp) -> None:
    """Interests /papers accepts, escaped (`&` is `&amp;`), ran to 28,221 characters in one
    section; Slack refuses such a view whole. Now: a section per line, each within 3,000."""
    kw = ", ".join(f"k{i:02d}" + "&" * 76 for i in range(20))
    for text in (
        "subscribe " + "&" * 1000,
        "keywords " + kw,
        "exclude " + kw.replace("k", "x"),
        "authors " + kw.replace("k", "a"),
    ):
        assert app.command(text).status_code == 200
    wait_until(lambda: len(app.peer.calls("views.publish")) == 4)  # the commands' after-work
    view = opened(app)  # the peer refuses (and does not record) a view past Slack's limits
    sections = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    assert len(view["blocks"]) <= 100 and all(0 < len(t) <= 3000 for t in sections)
    assert [t.split(":")[0] for t in sections[1:]] == [
        "• in words",
        "• keywords",
        "• exclude",
        "• authors",
        "• trending",
    ]
    assert sections[2].startswith("• keywords: k00&amp;&amp;") and sections[2].endswith("&amp;…")
    assert buttons(view) == [
        "digestbot_home_edit",
        "digestbot_home_pause",
        "digestbot_home_unsubscribe",
    ]
    assert all(v["method"] == "views.publish" for v in app.peer.views)


def test_more_lines_than_blocks_share_the_last_section() -> None:
    got = _sections([f"line {n} " + "&amp;" * 700 for n in range(150)], 97)
    assert len(got) == 97 and got[-1]["text"]["text"].startswith("line 96 ")
    assert all(len(b["text"]["text"]) <= 3000 for b in got)


def _submit(app: SlackApp, **fields: str) -> Any:
    values = {k: {k: {"type": "plain_text_input", "value": v}} for k, v in fields.items()}
    payload = {
        "type": "view_submission",
        "team": {"id": SINGLE},
        "user": {"id": USER, "team_id": SINGLE},
        "view": {"callback_id": "digestbot_edit", "type": "modal", "state": {"values": values}},
    }
    return app.interact(payload)


def test_edit_opens_a_modal_and_saving_it_changes_the_subscription(app: SlackApp) -> None:
    app.command("subscribe quantization")
    app.command("schedule weekly mon 07:30")
    wait_until(lambda: len(app.peer.calls("views.publish")) == 2)  # both commands' after-work
    click(app, "digestbot_home_edit")
    wait_until(lambda: any(v["method"] == "views.open" for v in app.peer.views))
    (modal,) = [v for v in app.peer.views if v["method"] == "views.open"]
    assert modal["method"] == "views.open" and modal["trigger_id"]
    assert modal["view"]["type"] == "modal" and modal["view"]["callback_id"] == "digestbot_edit"
    initial = {b["block_id"]: b["element"]["initial_value"] for b in modal["view"]["blocks"]}
    assert initial["description"] == "quantization"
    assert initial["schedule"] == "weekly mon 07:30"
    before = app.store.slack_member(SINGLE, USER)
    bad = _submit(app, description="x", topics="quantisation", schedule="daily 08:00")
    assert bad.status_code == 200
    assert bad.json()["response_action"] == "errors"
    assert "did you mean 'quantization'" in bad.json()["errors"]["topics"]
    assert app.store.slack_member(SINGLE, USER) == before  # nothing saved
    ok = _submit(
        app,
        description="sparse attention",
        keywords="flash attention",
        exclude="",
        topics="quantization",
        authors="Tri Dao",
        schedule="daily 06:15 Europe/Berlin",
    )
    assert ok.status_code == 200 and ok.text == ""
    row = app.store.slack_member(SINGLE, USER)
    assert row is not None and (row.schedule, row.zone) == ("15 6 * * *", "Europe/Berlin")
    assert Interests.from_dict(row.interests) == Interests(
        description="sparse attention",
        keywords=("flash attention",),
        topics=("quantization",),
        authors=("Tri Dao",),
    )


def test_a_replayed_button_click_changes_nothing(app: SlackApp) -> None:
    app.command("subscribe quantization")
    payload = {
        "type": "block_actions",
        "team": {"id": SINGLE},
        "user": {"id": USER},
        "actions": [{"action_id": "digestbot_home_pause"}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = int(time.time())
    assert app.signed("/slack/actions", body, ts=ts).status_code == 200
    app.store.save_slack_member(SINGLE, USER, status="active")
    assert app.signed("/slack/actions", body, ts=ts).status_code == 409
    assert app.store.slack_member(SINGLE, USER).status == "active"  # type: ignore[union-attr]


def test_events_from_strangers_or_replayed_publish_nothing(app: SlackApp) -> None:
    event = {
        "type": "event_callback",
        "team_id": "T0STRANGER",
        "event_id": "Ev0STRANGER",
        "event": {"type": "app_home_opened", "user": USER, "tab": "home"},
    }
    assert app.event(event).status_code == 403
    uninstall = {
        "type": "event_callback",
        "team_id": "T0STRANGER",
        "event": {"type": "app_uninstalled"},
    }
    assert app.event(uninstall).status_code == 403
    body = json.dumps({**event, "team_id": SINGLE}).encode()
    ts = int(time.time())
    ok = app.signed("/slack/events", body, ts=ts, content_type="application/json")
    again = app.signed("/slack/events", body, ts=ts, content_type="application/json")
    assert (ok.status_code, again.status_code) == (200, 409)
    wait_until(lambda: app.peer.views)
    time.sleep(0.3)  # what the replay would have published, had it been let through
    assert len(app.peer.views) == 1
    huge = app.signed("/slack/events", b'{"type": "x", "pad": "' + b"x" * 100_000 + b'"}')
    assert huge.status_code == 413


def test_an_empty_edit_modal_makes_no_member_and_says_why(app: SlackApp) -> None:
    r = _submit(app, description="", keywords="", exclude="surveys", schedule="daily 08:00")
    assert r.status_code == 200 and r.json()["response_action"] == "errors"
    assert "nothing to match on" in r.json()["errors"]["description"]
    assert app.store.slack_member(SINGLE, USER) is None


def test_resume_resumes_only_a_paused_member_in_app_home_and_the_command(app: SlackApp) -> None:
    """Who unsubscribed is offered no Resume and told to subscribe again, in both places; a stale
    Resume button changes nothing."""
    app.command("subscribe quantization")
    app.command("unsubscribe")
    wait_until(lambda: len(app.peer.calls("views.publish")) == 2)
    view = opened(app)
    assert buttons(view) == ["digestbot_home_edit"]
    assert "`/papers subscribe <what you care about>` starts again" in texts(view)
    click(app, "digestbot_home_resume")
    assert app.store.slack_member(SINGLE, USER).status == "unsubscribed"  # type: ignore[union-attr]
    r = app.command("resume")
    assert r.json()["text"] == (
        "You unsubscribed: `/papers subscribe <what you care about>` starts again."
    )
    assert app.store.slack_member(SINGLE, USER).status == "unsubscribed"  # type: ignore[union-attr]
    assert app.command("subscribe quantization again").status_code == 200
    assert app.command("pause").status_code == 200
    again = app.command("resume", trigger_id="another")  # not the same signed body as above
    assert again.json()["text"].startswith("Resumed")
    assert app.store.slack_member(SINGLE, USER).status == "active"  # type: ignore[union-attr]


def test_a_too_long_description_in_the_modal_is_a_field_error_not_cut(app: SlackApp) -> None:
    from bot.web.forms import MAX_DESCRIPTION

    app.command("subscribe quantization")
    wait_until(lambda: app.peer.responses)  # the command's after-work is done
    before = app.store.slack_member(SINGLE, USER)
    r = _submit(app, description="z" * (MAX_DESCRIPTION + 1), schedule="daily 08:00")
    assert r.json()["response_action"] == "errors"
    assert r.json()["errors"] == {"description": f"keep it under {MAX_DESCRIPTION} characters"}
    assert app.store.slack_member(SINGLE, USER) == before  # nothing saved, nothing cut
