"""The web front over real HTTP (uvicorn on loopback) with a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
import time_machine
from peers import SmtpPeer, free_port
from starlette.applications import Starlette
from web_support import csrf_of, digestbot_serve, link_in, running

from bot import tokens
from bot.config import Settings
from bot.models import DigestItem, Entry, Interests
from bot.roster import load_roster
from bot.store import Store
from bot.web import app as web_app
from bot.web import create_app
from bot.web.forms import Preferences, chosen

SLACK_SECRET = "slack-signing-secret-for-tests"
ENTRY = Entry(
    id="arxiv:2603.00001", title="Low-bit <b>quantization</b> of LLMs", url="javascript:alert(1)"
)


@dataclass
class Site:
    """The app under test and what it talks to."""

    url: str
    app: Starlette
    settings: Settings
    store: Store
    inbox: SmtpPeer


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("web")
    subs = tmp / "subscriptions"
    subs.mkdir()
    (subs / "alice.toml").write_text(
        'email = "alice@example.org"\n[interests]\nkeywords = ["quantization"]\n'
    )
    port = free_port()
    with SmtpPeer() as inbox:
        settings = Settings(
            database_url=f"sqlite:///{tmp / 'db.sqlite'}",
            base_url=f"http://127.0.0.1:{port}",
            secret_key="test-secret-key",
            smtp_url=inbox.url,
            subscriptions_dir=subs,
            from_addr="digestbot <digest@example.org>",
            environ={"SLACK_SIGNING_SECRET": SLACK_SECRET},
        )
        store = Store(settings.database_url)
        store.upsert_entries([ENTRY])
        app = create_app(settings, store)
        with running(app, port) as url:
            yield Site(url, app, settings, store, inbox)
        store.close()


def form(session: requests.Session, url: str) -> str:
    """GET a page and return its CSRF token (the session keeps the cookie)."""
    r = session.get(url)
    assert r.status_code == 200, r.text
    return csrf_of(r.text)


def subscribe(
    site: Site, session: requests.Session, email: str, **extra: str | list[str]
) -> requests.Response:
    data = {
        "csrf": form(session, site.url + "/"),
        "email": email,
        "keywords": "quantization, low-bit",
        "frequency": "daily",
        "hour": "8",
        "timezone": "Europe/Berlin",
        **extra,
    }
    return session.post(site.url + "/subscribe", data=data, allow_redirects=False)


CHOSEN = chosen(Preferences(interests=Interests(keywords=("quantization",))))


def sign(site: Site, kind: str, sid: str, entry: str = "", now: float | None = None) -> str:
    """A token as the app makes it (a confirmation link carries the settings its request chose)."""
    return tokens.sign(
        site.settings, kind, sid, entry, now=now, chosen=CHOSEN if kind == "confirm" else None
    )


def confirmed(site: Site, email: str) -> str:
    """Subscribe `email` and confirm it through the mailed link; return the subscriber id."""
    s = requests.Session()
    before = len(site.inbox.to(email))
    assert subscribe(site, s, email).status_code == 200
    msg = _wait_to(site.inbox, email, before + 1)[-1]
    link = link_in(msg, "/confirm/")
    r = s.post(link, data={"csrf": form(s, link)}, allow_redirects=False)
    assert r.status_code == 303
    row = site.store.web_subscriber_by_email(email)
    assert row is not None and row.status == "active"
    return row.id


def _wait_to(inbox: SmtpPeer, email: str, count: int) -> list:  # type: ignore[type-arg]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = inbox.to(email)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"expected {count} message(s) to {email}, got {len(inbox.to(email))}")


# --- pages, headers, CSRF -----------------------------------------------------------------------
def test_home_page_has_the_form_a_csrf_cookie_and_safety_headers(site: Site) -> None:
    r = requests.get(site.url + "/")
    assert r.status_code == 200
    assert (
        'action="/subscribe"' in r.text and 'name="email"' in r.text and 'id="timezone"' in r.text
    )
    assert r.cookies.get("digestbot_csrf") == csrf_of(r.text)
    assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=lax" in r.headers["set-cookie"]
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert requests.get(site.url + "/static/app.js").status_code == 200


def test_a_form_without_the_csrf_token_is_refused(site: Site) -> None:
    s = requests.Session()
    s.get(site.url + "/")
    data = {
        "email": "nocsrf@example.org",
        "keywords": "x",
        "frequency": "daily",
        "hour": "8",
        "timezone": "UTC",
    }
    assert s.post(site.url + "/subscribe", data=data).status_code == 403
    # A token from another browser (cookie and field differ) is refused too.
    other = form(requests.Session(), site.url + "/")
    assert s.post(site.url + "/subscribe", data={**data, "csrf": other}).status_code == 403
    assert site.store.web_subscriber_by_email("nocsrf@example.org") is None


@pytest.mark.parametrize("zone", ["Europe", "America", "a" * 300])
def test_a_zone_name_that_is_a_tzdata_folder_or_too_long_is_a_field_error(
    site: Site, zone: str
) -> None:
    """ZoneInfo raises IsADirectoryError or OSError for these, not ZoneInfoNotFoundError: the
    form still answers 400 naming the field (it was a 500)."""
    r = subscribe(site, requests.Session(), "zoned@example.org", timezone=zone)
    assert r.status_code == 400 and "Choose a time zone from the list." in r.text


def test_bad_input_is_shown_back_escaped_with_the_reason(site: Site) -> None:
    s = requests.Session()
    r = subscribe(
        site,
        s,
        "not-an-address",
        keywords="",
        description="<script>alert(1)</script>",
        timezone="Mars/Olympus",
    )
    assert r.status_code == 400
    assert "Give an email address such as alice@example.org." in r.text
    assert "Choose a time zone from the list." in r.text
    assert (
        "<script>alert(1)</script>" not in r.text
        and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    )
    r = subscribe(site, s, "empty@example.org", keywords="")
    assert r.status_code == 400 and "Tell us what to look for" in r.text


def test_topics_come_from_the_taxonomy(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    web = site.app.state.web
    monkeypatch.setattr(web, "topics", [("quantization", "Quantization <& co>")])
    monkeypatch.setattr(web, "topic_slugs", {"quantization"})
    s = requests.Session()
    page = s.get(site.url + "/")
    assert 'value="quantization"' in page.text and "Quantization &lt;&amp; co&gt;" in page.text
    r = subscribe(site, s, "topics@example.org", keywords="", topics=["quantization", "made-up"])
    assert r.status_code == 400 and "Choose topics from the list." in r.text
    r = subscribe(site, s, "topics@example.org", keywords="", topics=["quantization"])
    assert r.status_code == 200
    row = site.store.web_subscriber_by_email("topics@example.org")
    assert row is not None and row.interests["topics"] == ["quantization"]


# --- double opt-in -------------------------------------------------------------------------------
def test_double_opt_in_with_a_single_use_link(site: Site) -> None:
    s = requests.Session()
    r = subscribe(site, s, "new@example.org", name="New Person")
    assert r.status_code == 200 and "Check your inbox" in r.text
    row = site.store.web_subscriber_by_email("new@example.org")
    assert row is not None and row.status == "unconfirmed"
    assert row.id not in [
        x.id for x in load_roster(site.settings, site.store)[0]
    ]  # unconfirmed: gets nothing
    msg = _wait_to(site.inbox, "new@example.org", 1)[0]
    assert msg["Subject"] == "Confirm your digestbot subscription"
    link = link_in(msg, "/confirm/")
    assert link.startswith(site.settings.base_url + "/confirm/")
    page = s.get(link)  # what a mail scanner does: changes nothing
    assert page.status_code == 200 and "Confirm my subscription" in page.text
    assert site.store.web_subscriber(row.id).status == "unconfirmed"  # type: ignore[union-attr]
    r = s.post(link, data={"csrf": csrf_of(page.text)}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/manage/")
    assert site.store.web_subscriber(row.id).status == "active"  # type: ignore[union-attr]
    assert row.id in [x.id for x in load_roster(site.settings, site.store)[0]]
    again = s.post(link, data={"csrf": csrf_of(page.text)}, allow_redirects=False)
    assert again.status_code == 400 and "used already" in again.text


def test_an_expired_or_forged_confirmation_link_is_refused(site: Site) -> None:
    s = requests.Session()
    subscribe(site, s, "late@example.org")
    row = site.store.web_subscriber_by_email("late@example.org")
    assert row is not None
    with time_machine.travel(datetime.now(UTC) - timedelta(days=3), tick=False):
        old = sign(site, "confirm", row.id)
    r = s.get(f"{site.url}/confirm/{old}")
    assert r.status_code == 400 and "expired" in r.text
    assert (
        s.post(f"{site.url}/confirm/{old}", data={"csrf": form(s, site.url + "/")}).status_code
        == 400
    )
    forged = tokens.sign(Settings(secret_key="someone else's"), "confirm", row.id, chosen=CHOSEN)
    assert s.get(f"{site.url}/confirm/{forged}").status_code == 400
    assert site.store.web_subscriber(row.id).status == "unconfirmed"  # type: ignore[union-attr]


def test_a_link_from_before_unsubscribing_does_not_resubscribe(site: Site) -> None:
    s = requests.Session()
    subscribe(site, s, "twice@example.org")
    first = link_in(_wait_to(site.inbox, "twice@example.org", 1)[0], "/confirm/")
    sid = site.store.web_subscriber_by_email("twice@example.org").id  # type: ignore[union-attr]
    # A second link, issued before unsubscribing (in another second than the first: tokens are
    # deterministic per second, and the first one is used up).
    second = f"{site.url}/confirm/{sign(site, 'confirm', sid, now=time.time() - 5)}"
    assert second != first
    assert s.post(first, data={"csrf": form(s, first)}, allow_redirects=False).status_code == 303
    assert (
        s.post(
            f"{site.url}/unsubscribe/{sign(site, 'unsubscribe', sid)}",
            data={"List-Unsubscribe": "One-Click"},
        ).status_code
        == 200
    )
    time.sleep(1.1)  # token times are whole seconds
    subscribe(site, s, "twice@example.org")  # asks again: unconfirmed until the NEW link is used
    r = s.post(second, data={"csrf": form(s, second)}, allow_redirects=False)
    assert r.status_code == 400
    assert site.store.web_subscriber(sid).status == "unconfirmed"  # type: ignore[union-attr]


def test_the_page_does_not_tell_whether_an_address_is_subscribed(site: Site) -> None:
    sid = confirmed(site, "known@example.org")
    before = site.store.web_subscriber(sid)
    s = requests.Session()
    pages = [
        subscribe(site, s, email, keywords="something else entirely")
        for email in ("known@example.org", "unknown@example.org")
    ]
    assert [p.status_code for p in pages] == [200, 200]
    assert pages[0].text.replace("known@", "X@") == pages[1].text.replace("unknown@", "X@")
    assert site.store.web_subscriber(sid) == before  # a stranger changed nothing
    reminder = _wait_to(site.inbox, "known@example.org", 2)[-1]  # the owner learns of it by mail
    assert reminder["Subject"] == "Your digestbot subscription"
    assert link_in(reminder, "/manage/")


def test_confirmation_mails_are_limited_per_address_and_per_client(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = requests.Session()
    for _ in range(web_app.PER_ADDRESS_PER_HOUR + 2):
        assert (
            subscribe(site, s, "flood@example.org").status_code == 200
        )  # same page: tells nothing
    time.sleep(0.5)
    assert (
        len(_wait_to(site.inbox, "flood@example.org", web_app.PER_ADDRESS_PER_HOUR))
        == web_app.PER_ADDRESS_PER_HOUR
    )
    monkeypatch.setattr(web_app, "PER_CLIENT_PER_HOUR", 0)
    r = subscribe(site, s, "someone-else@example.org")
    assert r.status_code == 429 and "Too many requests" in r.text
    assert site.store.web_subscriber_by_email("someone-else@example.org") is None


# --- unsubscribe, RFC 8058 -------------------------------------------------------------------------
def test_one_click_unsubscribe_is_immediate_and_idempotent(site: Site) -> None:
    sid = confirmed(site, "oneclick@example.org")
    url = f"{site.url}/unsubscribe/{sign(site, 'unsubscribe', sid)}"
    for _ in range(2):
        r = requests.post(
            url,
            data="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200
        assert site.store.web_subscriber(sid).status == "unsubscribed"  # type: ignore[union-attr]
    # Multipart, as RFC 8058 also allows.
    r = requests.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert r.status_code == 200
    assert sid not in [x.id for x in load_roster(site.settings, site.store)[0]]


def test_get_shows_a_button_and_changes_nothing(site: Site) -> None:
    sid = confirmed(site, "scanner@example.org")
    url = f"{site.url}/unsubscribe/{sign(site, 'unsubscribe', sid)}"
    s = requests.Session()
    for _ in range(3):
        r = s.get(url)
        assert r.status_code == 200 and ">Unsubscribe</button>" in r.text
    assert site.store.web_subscriber(sid).status == "active"  # type: ignore[union-attr]
    assert s.post(url, data={}).status_code == 403  # neither one-click nor the page's form
    assert site.store.web_subscriber(sid).status == "active"  # type: ignore[union-attr]
    r = s.post(url, data={"csrf": csrf_of(r.text)})
    assert r.status_code == 200 and "You are unsubscribed" in r.text
    assert site.store.web_subscriber(sid).status == "unsubscribed"  # type: ignore[union-attr]


@pytest.mark.parametrize("token", ["garbage", "abc.def", "eyJrIjoidW5zdWJzY3JpYmUifQ.AAAA"])
def test_bad_unsubscribe_tokens_get_4xx(site: Site, token: str) -> None:
    assert requests.get(f"{site.url}/unsubscribe/{token}").status_code == 400
    assert (
        requests.post(
            f"{site.url}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}
        ).status_code
        == 400
    )


DEEP = base64.urlsafe_b64encode(b"[" * 3000).rstrip(b"=").decode() + ".AAAA"


def test_a_token_whose_payload_would_overflow_the_parser_is_a_bad_link_everywhere(
    site: Site,
) -> None:
    """A forged token is refused before its payload is read: JSON nested 3000 deep is the "This
    link does not work" page on every route that takes a token, never a 500."""
    s = requests.Session()
    token = csrf_of(s.get(site.url + "/").text)
    for path in (
        "/manage/",
        "/unsubscribe/",
        "/confirm/",
        "/digest/",
        "/feedback/{}/up",
        "/feed/{}.xml",
    ):
        url = site.url + (path.format(DEEP) if "{}" in path else path + DEEP)
        r = s.get(url)
        assert r.status_code == 400 and "This link does not work" in r.text, path
        if path.startswith(("/digest/", "/feed/")):
            continue  # GET only
        data = {"csrf": token, "action": "resume", "List-Unsubscribe": "One-Click"}
        r = s.post(url, data=data, allow_redirects=False)
        assert r.status_code == 400 and "does not work" in r.text, path


def test_forged_and_wrong_kind_unsubscribe_tokens_change_nothing(site: Site) -> None:
    sid = confirmed(site, "forged@example.org")
    forged = tokens.sign(Settings(secret_key="attacker"), "unsubscribe", sid)
    manage = sign(site, "manage", sid)
    for token in (forged, manage):
        r = requests.post(f"{site.url}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
        assert 400 <= r.status_code < 500
    assert site.store.web_subscriber(sid).status == "active"  # type: ignore[union-attr]


def test_a_file_subscriber_can_unsubscribe_and_it_wins_over_the_file(site: Site) -> None:
    assert "alice" in [x.id for x in load_roster(site.settings, site.store)[0]]
    r = requests.post(
        f"{site.url}/unsubscribe/{sign(site, 'unsubscribe', 'alice')}",
        data={"List-Unsubscribe": "One-Click"},
    )
    assert r.status_code == 200
    assert site.store.subscriber_statuses()["alice"] == "unsubscribed"
    assert "alice" not in [x.id for x in load_roster(site.settings, site.store)[0]]
    s = requests.Session()
    url = f"{site.url}/manage/{sign(site, 'manage', 'alice')}"
    page = s.get(url)
    assert (
        page.status_code == 200
        and "set in a subscription file" in page.text
        and "Subscribe again" in page.text
    )
    assert (
        s.post(
            url, data={"csrf": csrf_of(page.text), "action": "resume"}, allow_redirects=False
        ).status_code
        == 303
    )
    assert "alice" in [x.id for x in load_roster(site.settings, site.store)[0]]


# --- manage ---------------------------------------------------------------------------------------
def test_manage_edits_only_the_tokens_subscriber(site: Site) -> None:
    a, b = confirmed(site, "mine@example.org"), confirmed(site, "theirs@example.org")
    b_before = site.store.web_subscriber(b)
    s = requests.Session()
    url = f"{site.url}/manage/{sign(site, 'manage', a)}"
    page = s.get(url)
    assert (
        page.status_code == 200
        and "mine@example.org" in page.text
        and "theirs@example.org" not in page.text
    )
    data = {
        "csrf": csrf_of(page.text),
        "action": "save",
        "keywords": "pruning, sparsity",
        "topics": [],
        "description": "",
        "frequency": "weekly",
        "hour": "7",
        "timezone": "Asia/Tokyo",
        "max_items": "5",
        "subscriber": b,
        "id": b,
    }  # extra fields naming another subscriber are ignored
    r = s.post(url, data=data, allow_redirects=False)
    assert r.status_code == 303
    row = site.store.web_subscriber(a)
    assert row is not None
    assert (row.interests["keywords"], row.schedule, row.timezone, row.max_items) == (
        ["pruning", "sparsity"],
        "0 7 * * 1",
        "Asia/Tokyo",
        5,
    )
    assert site.store.web_subscriber(b) == b_before
    # A token edited to name B is a forgery.
    head, mac = sign(site, "manage", a).split(".")
    body = tokens._unb64(head).replace(a.encode(), b.encode())
    assert (
        s.post(
            f"{site.url}/manage/{tokens._b64(body)}.{mac}", data={**data, "action": "pause"}
        ).status_code
        == 400
    )
    assert site.store.web_subscriber(b) == b_before
    # Pause, then resume.
    s.post(url, data={"csrf": data["csrf"], "action": "pause"})
    assert site.store.web_subscriber(a).status == "paused"  # type: ignore[union-attr]
    assert a not in [x.id for x in load_roster(site.settings, site.store)[0]]
    r = s.post(url, data={"csrf": data["csrf"], "action": "resume"})
    assert r.status_code == 200 and "Your digest is on again." in r.text
    assert site.store.web_subscriber(a).status == "active"  # type: ignore[union-attr]


def test_manage_refuses_bad_input_and_missing_csrf(site: Site) -> None:
    a = confirmed(site, "careful@example.org")
    s = requests.Session()
    url = f"{site.url}/manage/{sign(site, 'manage', a)}"
    token = form(s, url)
    r = s.post(
        url,
        data={
            "csrf": token,
            "action": "save",
            "keywords": "",
            "frequency": "hourly",
            "hour": "8",
            "timezone": "UTC",
            "max_items": "10",
        },
    )
    assert (
        r.status_code == 400
        and "Choose daily or weekly." in r.text
        and "Tell us what to look for" in r.text
    )
    assert requests.post(url, data={"action": "unsubscribe"}).status_code == 403
    assert site.store.web_subscriber(a).status == "active"  # type: ignore[union-attr]


def test_expired_manage_and_feedback_links_are_refused(site: Site) -> None:
    a = confirmed(site, "expired@example.org")
    year_and_a_day = time.time() - 366 * 86400
    manage = tokens.sign(site.settings, "manage", a, now=year_and_a_day)
    r = requests.get(f"{site.url}/manage/{manage}")
    assert r.status_code == 400 and "expired" in r.text
    vote = tokens.sign(site.settings, "feedback", a, ENTRY.id, now=year_and_a_day)
    assert requests.get(f"{site.url}/feedback/{vote}/up").status_code == 400
    # Unsubscribe links never expire: an old digest can always stop the next one.
    old = tokens.sign(site.settings, "unsubscribe", a, now=year_and_a_day)
    assert (
        requests.post(
            f"{site.url}/unsubscribe/{old}", data={"List-Unsubscribe": "One-Click"}
        ).status_code
        == 200
    )
    assert site.store.web_subscriber(a).status == "unsubscribed"  # type: ignore[union-attr]


# --- feedback -------------------------------------------------------------------------------------
def test_feedback_get_records_nothing_the_button_records(site: Site) -> None:
    s = requests.Session()
    url = f"{site.url}/feedback/{sign(site, 'feedback', 'voter', ENTRY.id)}/down"
    page = s.get(url)
    assert page.status_code == 200
    assert (
        "Low-bit &lt;b&gt;quantization&lt;/b&gt; of LLMs" in page.text
        and "javascript:" not in page.text
    )
    assert site.store.feedback_for(["voter"]) == {}
    r = s.post(url, data={"csrf": csrf_of(page.text)})
    assert r.status_code == 200 and "Thank you" in r.text
    assert [(e.id, v) for e, v in site.store.feedback_for(["voter"])["voter"]] == [(ENTRY.id, -1)]
    assert s.get(url.replace("/down", "/sideways")).status_code == 404
    assert s.get(url.replace("/feedback/", "/feedback/x")).status_code == 400
    assert requests.post(url, data={}).status_code == 403


# --- Slack ------------------------------------------------------------------------------------------
def slack_post(
    site: Site, payload: dict, secret: str = SLACK_SECRET, ts: int | None = None
) -> requests.Response:  # type: ignore[type-arg]
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(time.time()) if ts is None else ts)
    sig = (
        "v0="
        + hmac.new(
            secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256
        ).hexdigest()
    )
    return requests.post(
        site.url + "/slack/actions",
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sig,
        },
    )


def _click(site: Site, sid: str, vote: str) -> dict:  # type: ignore[type-arg]
    return {
        "type": "block_actions",
        "user": {"id": "U1"},
        "actions": [
            {
                "action_id": f"feedback:{vote}",
                "value": sign(site, "feedback", sid, ENTRY.id),
                "type": "button",
            }
        ],
    }


def test_slack_button_clicks_record_feedback(site: Site) -> None:
    r = slack_post(site, _click(site, "slacker", "up"))
    assert r.status_code == 200
    assert [(e.id, v) for e, v in site.store.feedback_for(["slacker"])["slacker"]] == [
        (ENTRY.id, 1)
    ]


def test_slack_buttons_as_the_renderer_makes_them(site: Site) -> None:
    """action_id `digestbot_up:<digest>:<entry>`, value "<digest> <entry>": checked against the ledger."""
    slot = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    claimed = site.store.claim("slackteam", slot, [DigestItem(ENTRY, 0.9)], "slack")
    assert claimed is not None
    did = claimed.digest_id

    def click(vote: str, value: str) -> dict:  # type: ignore[type-arg]
        return {
            "type": "block_actions",
            "actions": [{"action_id": f"digestbot_{vote}:{did}:{ENTRY.id}", "value": value}],
        }

    assert slack_post(site, click("down", f"{did} {ENTRY.id}")).status_code == 200
    assert [(e.id, v) for e, v in site.store.feedback_for(["slackteam"])["slackteam"]] == [
        (ENTRY.id, -1)
    ]
    # An entry that was not in that digest, or a digest that does not exist: no vote.
    assert slack_post(site, click("up", f"{did} arxiv:0000.00000")).status_code == 200
    assert slack_post(site, click("up", f"nobody.20260302T0800Z {ENTRY.id}")).status_code == 200
    assert [v for _, v in site.store.feedback_for(["slackteam", "nobody"])["slackteam"]] == [-1]
    assert "nobody" not in site.store.feedback_for(["nobody"])


def test_slack_forged_signature_and_stale_timestamp_are_refused(site: Site) -> None:
    assert slack_post(site, _click(site, "mallory", "up"), secret="wrong").status_code == 401
    assert (
        slack_post(site, _click(site, "mallory", "up"), ts=int(time.time()) - 6 * 60).status_code
        == 401
    )
    assert (
        slack_post(site, _click(site, "mallory", "up"), ts=int(time.time()) + 6 * 60).status_code
        == 401
    )
    unsigned = requests.post(
        site.url + "/slack/actions", data={"payload": json.dumps(_click(site, "mallory", "up"))}
    )
    assert unsigned.status_code == 401
    assert site.store.feedback_for(["mallory"]) == {}
    # Signed by Slack but carrying a forged feedback token: accepted as a request, no vote.
    bad = _click(site, "mallory", "up")
    bad["actions"][0]["value"] = tokens.sign(
        Settings(secret_key="x"), "feedback", "mallory", ENTRY.id
    )
    assert slack_post(site, bad).status_code == 200
    assert site.store.feedback_for(["mallory"]) == {}


def test_slack_without_a_signing_secret_refuses_everything(site: Site, tmp_path: Path) -> None:
    settings = replace(site.settings, environ={})
    port = free_port()
    with running(create_app(settings, site.store), port) as url:
        body = {"payload": json.dumps(_click(site, "nosecret", "up"))}
        r = requests.post(
            url + "/slack/actions",
            data=body,
            headers={
                "X-Slack-Request-Timestamp": str(int(time.time())),
                "X-Slack-Signature": "v0=00",
            },
        )
        assert r.status_code == 401
    assert site.store.feedback_for(["nosecret"]) == {}


def test_no_secret_reaches_a_page(site: Site) -> None:
    pages = [requests.get(site.url + "/").text, requests.get(f"{site.url}/unsubscribe/x.y").text]
    for text in pages:
        assert site.settings.secret_key not in text and SLACK_SECRET not in text
    assert not re.search(r"Traceback", "".join(pages))


@pytest.mark.slow
def test_digestbot_serve_runs_the_app_under_uvicorn(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DIGESTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "DIGESTBOT_BASE_URL": f"http://127.0.0.1:{port}",
        "DIGESTBOT_SECRET_KEY": "serve-secret-value",
        "SLACK_SIGNING_SECRET": "serve-slack-secret",
    }
    env.pop("DIGESTBOT_CONFIG", None)
    with digestbot_serve(tmp_path, port, env, "--host", "127.0.0.1") as served:
        page = requests.get(f"http://127.0.0.1:{port}/")
        assert page.status_code == 200 and 'action="/subscribe"' in page.text
    err = served.err
    assert f"Serving on http://127.0.0.1:{port}/" in err
    assert "serve-secret-value" not in err and "serve-slack-secret" not in err


def test_a_link_mailed_to_an_old_address_does_not_control_the_new_one(site: Site) -> None:
    """Issue 17.12: after a file's address changes, the old person's links unsubscribe or pause
    nobody; the new address's own links do."""
    from _digests import digest, subscriber

    from bot.render import link

    subs = site.settings.subscriptions_dir
    body = '[interests]\nkeywords = ["quantization"]\n'
    (subs / "frank.toml").write_text('email = "frank@example.org"\n' + body)
    try:
        mailed = digest(1, sub=subscriber(id="frank", email="frank@example.org"))
        old_unsub = link(site.settings, "unsubscribe", mailed).rsplit("/", 1)[1]
        old_manage = link(site.settings, "manage", mailed).rsplit("/", 1)[1]
        assert tokens.verify(site.settings, old_unsub, "unsubscribe")["address"] == (
            "frank@example.org"
        )
        (subs / "frank.toml").write_text('email = "grace@example.org"\n' + body)  # a new person
        r = requests.post(
            f"{site.url}/unsubscribe/{old_unsub}", data={"List-Unsubscribe": "One-Click"}
        )
        assert r.status_code == 200
        assert "frank" in [x.id for x in load_roster(site.settings, site.store)[0]]
        s = requests.Session()
        page = s.get(f"{site.url}/manage/{old_manage}")  # the new person's settings: not shown
        assert page.status_code == 403 and "grace@example.org" not in page.text
        paused = s.post(
            f"{site.url}/manage/{old_manage}",
            data={"csrf": csrf_of(s.get(site.url + "/").text), "action": "pause"},
            allow_redirects=False,
        )
        assert paused.status_code == 403
        assert "frank" in [x.id for x in load_roster(site.settings, site.store)[0]]
        new = tokens.sign(site.settings, "unsubscribe", "frank", address="grace@example.org")
        r = requests.post(f"{site.url}/unsubscribe/{new}", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200
        assert "frank" not in [x.id for x in load_roster(site.settings, site.store)[0]]
        # the new address's manage page links a feed bound to that address
        current = tokens.sign(site.settings, "manage", "frank", address="grace@example.org")
        href = re.search(
            r'href="[^"]+/feed/([^"]+)\.xml"', s.get(f"{site.url}/manage/{current}").text
        )
        assert href and tokens.verify(site.settings, href.group(1), "feed")["address"] == (
            "grace@example.org"
        )
    finally:
        (subs / "frank.toml").unlink()


def test_the_old_addresss_unsubscribe_page_offers_no_way_into_the_new_persons_subscription(
    site: Site,
) -> None:
    """After unsubscribing, the page offers a manage link bound to the same address, and only
    when the unsubscribe applied: an old address's link offers none (it would have been an
    address-less link, which passes for any address)."""
    subs = site.settings.subscriptions_dir
    body = '[interests]\nkeywords = ["secret project"]\n'
    (subs / "hank.toml").write_text('email = "new-person@example.org"\n' + body)
    try:
        s = requests.Session()
        old = f"{site.url}/unsubscribe/" + tokens.sign(
            site.settings, "unsubscribe", "hank", address="old@example.org"
        )
        r = s.post(old, data={"csrf": csrf_of(s.get(old).text)})
        assert r.status_code == 200 and "/manage/" not in r.text
        assert "hank" not in site.store.subscriber_statuses()
        now = f"{site.url}/unsubscribe/" + tokens.sign(
            site.settings, "unsubscribe", "hank", address="new-person@example.org"
        )
        r = s.post(now, data={"csrf": csrf_of(s.get(now).text)})
        assert r.status_code == 200 and site.store.subscriber_statuses()["hank"] == "unsubscribed"
        found = re.search(r'href="[^"]*/manage/([^"]+)"', r.text)
        assert found, r.text
        offered = tokens.verify(site.settings, found.group(1), "manage")
        assert offered["address"] == "new-person@example.org"
        (subs / "hank.toml").write_text('email = "third@example.org"\n' + body)
        page = s.get(f"{site.url}/manage/{found.group(1)}")  # the offered link is bound too
        assert page.status_code == 403 and "secret project" not in page.text
    finally:
        (subs / "hank.toml").unlink()
        site.store.set_subscriber_status("hank", "active")


def test_an_old_addresss_manage_link_does_not_lift_the_new_persons_suspension(
    site: Site,
) -> None:
    subs = site.settings.subscriptions_dir
    (subs / "ivan.toml").write_text('email = "new@example.org"\n[interests]\nkeywords = ["x"]\n')
    try:
        site.store.suspend("ivan", "hard bounce: 550 5.1.1 new@example.org user unknown")
        s = requests.Session()
        old = f"{site.url}/manage/" + tokens.sign(
            site.settings, "manage", "ivan", address="old@example.org"
        )
        r = s.post(
            old,
            data={"csrf": csrf_of(s.get(site.url + "/").text), "action": "resume"},
            allow_redirects=False,
        )
        assert r.status_code == 403 and "Not your subscription" in r.text
        assert "ivan" in site.store.suspensions()  # still suspended
        now = f"{site.url}/manage/" + tokens.sign(
            site.settings, "manage", "ivan", address="new@example.org"
        )
        r = s.post(now, data={"csrf": csrf_of(s.get(now).text), "action": "resume"})
        assert r.status_code == 200 and "ivan" not in site.store.suspensions()
    finally:
        (subs / "ivan.toml").unlink()
        site.store.resume("ivan")
