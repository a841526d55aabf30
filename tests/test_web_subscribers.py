"""Subscription requests against strangers: one limit per mailbox (every spelling, atomic on
PostgreSQL), pending requests a stranger cannot rewrite, old manage links that cannot bring an
unsubscribed subscriber back. Real HTTP (uvicorn on loopback) and a real SMTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from peers import SmtpPeer, free_port
from web_support import Site, csrf_of, link_in, running

from bot import tokens
from bot.addresses import is_address, mailbox_key, normalize
from bot.config import Settings
from bot.store import Store
from bot.web import app as web_app
from bot.web import create_app


@pytest.fixture
def site(backend_url: str, tmp_path: Path) -> Iterator[Site]:
    port = free_port()
    with SmtpPeer() as inbox:
        settings = Settings(
            database_url=backend_url,
            base_url=f"http://127.0.0.1:{port}",
            secret_key="subscribers-secret-key",
            smtp_url=inbox.url,
            subscriptions_dir=tmp_path / "subscriptions",
            from_addr="digestbot <digest@example.org>",
        )
        store = Store(backend_url)
        try:
            with running(create_app(settings, store), port) as url:
                yield Site(url, settings, store, inbox)
        finally:
            store.close()


def subscribe(site: Site, email: str, keywords: str = "quantization", **extra: str) -> int:
    s = requests.Session()
    data = {"csrf": csrf_of(s.get(site.url + "/").text), "email": email, "keywords": keywords}
    return s.post(site.url + "/subscribe", data={**data, **extra}).status_code


def press(url: str) -> requests.Response:
    """Open a link's page and press its button, as a person does."""
    s = requests.Session()
    page = s.get(url)
    assert page.status_code == 200, page.text[:300]
    return s.post(url, data={"csrf": csrf_of(page.text)}, allow_redirects=False)


# --- one address check, normalized -----------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "kept", "key"),
    [
        ("Alice@Example.ORG", "Alice@example.org", "alice@example.org"),
        ("alice@example.org.", "alice@example.org", "alice@example.org"),  # the root's dot
        ("alice+news@example.org", "alice+news@example.org", "alice@example.org"),
        ("a@XN--EXMPLE-CUA.org", "a@xn--exmple-cua.org", "a@xn--exmple-cua.org"),  # IDNA
        ("a@xn--zz.org", None, None),  # not a valid IDNA label
        ("a@b..org", None, None),
        ("a\x00b@example.org", None, None),  # control characters never pass
        ("a\x7f@example.org", None, None),
        ("x:victim@example.org", None, None),
        ("victim(1)@example.org", None, None),
    ],
)
def test_normalize_gives_the_one_spelling_and_the_mailbox_key(
    given: str, kept: str | None, key: str | None
) -> None:
    assert normalize(given) == kept
    assert is_address(given) is (kept is not None)
    if key is not None:
        assert mailbox_key(given) == key


def test_every_spelling_of_one_mailbox_shares_the_per_address_limit(site: Site) -> None:
    spellings = [
        "victim@example.org",
        "Victim@EXAMPLE.org",
        "victim@example.org.",
        "victim+1@example.org",
        "VICTIM+2@Example.Org.",
        "victim+3@example.org",
    ]
    for n, address in enumerate(spellings):
        assert subscribe(site, address, keywords=f"k{n}") == 200
    mails = site.inbox.wait(web_app.PER_ADDRESS_PER_HOUR)
    # What a mail server delivering +tags and any case to one mailbox would put in it:
    to_victim = [m for m in site.inbox.mails if mailbox_key(m.to[0]) == "victim@example.org"]
    assert len(to_victim) == len(mails) == web_app.PER_ADDRESS_PER_HOUR
    row = site.store.web_subscriber_by_email("victim@example.org.")
    assert row is not None and row.email == "victim@example.org"  # kept normalized


# --- a pending request a stranger cannot rewrite --------------------------------------------------
def test_a_stranger_cannot_change_what_the_mailbox_owner_confirms(site: Site) -> None:
    assert subscribe(site, "owner@example.org", keywords="sparse attention", hour="7") == 200
    mine = link_in(site.inbox.wait(1)[0], "/confirm/")
    pending = site.store.web_subscriber_by_email("owner@example.org")
    assert pending is not None
    # A stranger posts the same address with their own choices before the owner confirms.
    assert subscribe(site, "owner@example.org", keywords="crypto scams", hour="3") == 200
    theirs = link_in(site.inbox.wait(2)[1], "/confirm/")  # to the owner's mailbox only
    assert site.store.web_subscriber(pending.id) == pending  # the pending row is untouched
    assert "crypto scams" in requests.get(theirs).text  # their mail says what it would confirm
    assert "sparse attention" in requests.get(mine).text
    assert press(mine).status_code == 303
    row = site.store.web_subscriber(pending.id)
    assert row is not None and row.status == "active"
    assert row.interests["keywords"] == ["sparse attention"] and row.schedule == "0 7 * * *"
    # The stranger's request cannot be confirmed afterwards either (one confirmation per request).
    assert press(theirs).status_code == 400
    after = site.store.web_subscriber(pending.id)
    assert after is not None and after.interests["keywords"] == ["sparse attention"]


def test_a_manage_link_does_not_bring_an_unsubscribed_subscriber_back(site: Site) -> None:
    assert subscribe(site, "leaver@example.org") == 200
    assert press(link_in(site.inbox.wait(1)[0], "/confirm/")).status_code == 303
    row = site.store.web_subscriber_by_email("leaver@example.org")
    assert row is not None
    with_old_link = tokens.sign(site.settings, "manage", row.id, now=time.time() - 300 * 86400)
    unsub = tokens.sign(site.settings, "unsubscribe", row.id)
    assert requests.post(
        f"{site.url}/unsubscribe/{unsub}", data={"List-Unsubscribe": "One-Click"}
    ).ok
    s = requests.Session()
    page = s.get(f"{site.url}/manage/{with_old_link}")
    assert page.status_code == 200 and "subscribe again" in page.text
    assert 'value="resume"' not in page.text
    r = s.post(
        f"{site.url}/manage/{with_old_link}",
        data={"csrf": csrf_of(page.text), "action": "resume"},
        allow_redirects=False,
    )
    assert r.status_code == 303  # the page answers as usual…
    after = site.store.web_subscriber(row.id)
    assert after is not None and after.status == "unsubscribed"  # …and nothing switched back on
    # Coming back is a new request, confirmed from the mailbox.
    assert subscribe(site, "leaver@example.org") == 200
    assert press(link_in(site.inbox.wait(2)[1], "/confirm/")).status_code == 303
    back = site.store.web_subscriber(row.id)
    assert back is not None and back.status == "active"


# --- atomic on PostgreSQL ------------------------------------------------------------------------
RACERS = 40


@pytest.mark.postgres
def test_the_rate_limit_is_atomic_under_40_racing_threads(pg_url: str) -> None:
    store = Store(pg_url)
    gate = threading.Barrier(RACERS)
    won: list[bool] = []

    def race() -> None:
        gate.wait()
        won.append(store.hit_rate("address:race", timedelta(hours=1), 3))

    try:
        threads = [threading.Thread(target=race) for _ in range(RACERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        store.close()
    assert len(won) == RACERS and won.count(True) == 3


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("backend_url", ["postgresql"], indirect=True)
def test_40_concurrent_requests_send_at_most_3_mails(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_app, "PER_CLIENT_PER_HOUR", 1000)
    gate = threading.Barrier(RACERS)
    sessions = []
    for _ in range(RACERS):
        s = requests.Session()
        sessions.append((s, csrf_of(s.get(site.url + "/").text)))
    codes: list[int] = []

    def post(s: requests.Session, csrf: str) -> None:
        gate.wait()
        data = {"csrf": csrf, "email": "race@example.org", "keywords": "x"}
        codes.append(s.post(site.url + "/subscribe", data=data).status_code)

    threads = [threading.Thread(target=post, args=pair) for pair in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert codes == [200] * RACERS
    site.inbox.wait(web_app.PER_ADDRESS_PER_HOUR)
    time.sleep(1.0)  # any mail beyond the limit would have arrived by now
    assert len(site.inbox.to("race@example.org")) == web_app.PER_ADDRESS_PER_HOUR


def test_the_largest_form_confirms_and_its_words_stay_out_of_the_mail(site: Site) -> None:
    keywords = ", ".join(f"phrase {n:02d} " + "w" * 66 for n in range(20))  # 20 × 80 characters
    description = "Visit http://evil.example.net now. " + "d" * 960
    assert subscribe(site, "big@example.org", keywords=keywords, description=description) == 200
    mail = site.inbox.wait(1)[0]
    text = mail.parsed().get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "evil.example.net" not in text and "phrase 00" not in text
    assert "20 keyword(s)" in text and "a description" in text
    link = link_in(mail, "/confirm/")
    assert len(link) < 8000
    page = requests.get(link)
    assert "phrase 19" in page.text  # the owner sees every choice on the page
    assert press(link).status_code == 303
    row = site.store.web_subscriber_by_email("big@example.org")
    assert row is not None and row.status == "active" and len(row.interests["keywords"]) == 20
    assert row.interests["description"] == description
