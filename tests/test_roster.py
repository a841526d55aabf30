"""The roster (files + web, minus those who left) and the store's web-subscriber tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import Settings
from bot.models import Interests, Subscriber
from bot.roster import census, file_subscriber, load_roster, roster_members
from bot.slots import latest_slot
from bot.store import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FILE = """name = "{name}"
email = "{sid}@example.org"
[interests]
keywords = ["quantization"]
"""


@pytest.fixture
def setup(backend_url: str, tmp_path: Path) -> Iterator[tuple[Settings, Store]]:
    subs = tmp_path / "subscriptions"
    subs.mkdir()
    for sid in ("alice", "bob"):
        (subs / f"{sid}.toml").write_text(FILE.format(name=sid.title(), sid=sid))
    (subs / "broken.toml").write_text("email = 3\n")
    store = Store(backend_url)
    try:
        yield Settings(subscriptions_dir=subs, database_url=store.url), store
    finally:
        store.close()


def _web(
    store: Store, sid: str, email: str, now: datetime = T0, zone: str = "Europe/Berlin"
) -> None:
    store.request_web_subscription(
        sid,
        email,
        "",
        {"keywords": ["pruning"], "topics": []},
        "0 8 * * *",
        zone,
        5,
        now,
    )


def ids(settings: Settings, store: Store) -> list[str]:
    return [s.id for s in load_roster(settings, store)[0]]


def test_files_plus_active_web_subscribers_minus_those_who_left(
    setup: tuple[Settings, Store],
) -> None:
    settings, store = setup
    _web(store, "web-a", "carol@example.org")
    _web(store, "web-b", "dave@example.org")
    assert ids(settings, store) == ["alice", "bob"]  # unconfirmed: nothing
    store.set_web_status("web-a", "active", only_from=("unconfirmed",))
    subs, problems = load_roster(settings, store)
    assert [s.id for s in subs] == ["alice", "bob", "web-a"]
    web = subs[-1]
    assert (web.email, web.origin, web.schedule, web.timezone, web.max_items) == (
        "carol@example.org",
        "web",
        "0 8 * * *",
        "Europe/Berlin",
        5,
    )
    assert web.interests == Interests(keywords=("pruning",))
    assert problems and {Path(p.path).name for p in problems} == {
        "broken.toml"
    }  # named; the others go on
    store.set_subscriber_status("bob", "unsubscribed")
    store.set_web_status("web-a", "paused")
    assert ids(settings, store) == ["alice"]
    store.set_subscriber_status("bob", "active")
    assert ids(settings, store) == ["alice", "bob"]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe"])
def test_a_stored_web_zone_this_host_does_not_know_is_utc_for_that_one_only(
    setup: tuple[Settings, Store], zone: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A zone saved by a web front whose tzdata is newer than the scheduler's (or a folder of
    the tzdata such as "Europe") plans that subscriber in UTC with a warning; it used to stop
    `run` for everyone (ZoneInfo raised while finding the slots)."""
    settings, store = setup
    _web(store, "web-z", "zed@example.org", zone=zone)
    store.set_web_status("web-z", "active", only_from=("unconfirmed",))
    with caplog.at_level("WARNING", logger="bot.zones"):
        subs, _ = load_roster(settings, store)
    assert {s.id: s.timezone for s in subs} == {"alice": "UTC", "bob": "UTC", "web-z": "UTC"}
    assert "web subscriber web-z: unknown time zone" in caplog.text and "using UTC" in caplog.text
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert [latest_slot(s, now) for s in subs] == [now.replace(hour=8)] * 3


def test_a_web_id_that_a_file_uses_is_skipped_with_a_problem(setup: tuple[Settings, Store]) -> None:
    settings, store = setup
    _web(store, "alice", "other@example.org")
    store.set_web_status("alice", "active")
    subs, problems = load_roster(settings, store)
    assert [s.email for s in subs if s.id == "alice"] == ["alice@example.org"]
    assert any(p.key == "alice" and "same id" in p.message for p in problems)


def test_a_request_never_changes_an_active_subscriber(setup: tuple[Settings, Store]) -> None:
    _, store = setup
    _web(store, "web-a", "Carol@Example.org")
    store.set_web_status("web-a", "active", T0)
    row = store.request_web_subscription(
        "web-x",
        "carol@example.ORG",
        "Mallory",
        {"keywords": ["spam"]},
        "0 1 * * *",
        "UTC",
        50,
        T0 + timedelta(hours=1),
    )
    assert (row.id, row.status, row.name, row.interests["keywords"], row.max_items) == (
        "web-a",
        "active",
        "",
        ["pruning"],
        5,
    )
    assert store.web_subscriber("web-x") is None


def test_requested_at_moves_only_when_a_subscriber_who_left_asks_again(
    setup: tuple[Settings, Store],
) -> None:
    _, store = setup
    _web(store, "web-a", "carol@example.org", T0)
    _web(
        store, "web-a2", "carol@example.org", T0 + timedelta(minutes=5)
    )  # asks twice before confirming
    row = store.web_subscriber_by_email("CAROL@example.org")
    assert row is not None and row.id == "web-a" and row.requested_at == T0
    store.set_web_status("web-a", "unsubscribed", T0 + timedelta(days=1))
    _web(store, "web-a3", "carol@example.org", T0 + timedelta(days=2))
    row = store.web_subscriber("web-a")
    assert row is not None and (row.status, row.requested_at) == (
        "unconfirmed",
        T0 + timedelta(days=2),
    )


def test_only_from_guards_status_changes(setup: tuple[Settings, Store]) -> None:
    _, store = setup
    _web(store, "web-a", "carol@example.org")
    assert not store.set_web_status("web-a", "paused", only_from=("active",))
    assert store.set_web_status("web-a", "active", T0, only_from=("unconfirmed",))
    row = store.web_subscriber("web-a")
    assert row is not None and row.confirmed_at == T0


def test_nonces_are_single_use_and_rates_are_limited(setup: tuple[Settings, Store]) -> None:
    _, store = setup
    assert store.use_token("n1", "confirm") is True
    assert store.use_token("n1", "confirm") is False
    hour = timedelta(hours=1)
    assert [store.hit_rate("address:x", hour, 3, T0 + timedelta(minutes=i)) for i in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert store.hit_rate("address:y", hour, 3, T0)  # another key has its own count
    assert store.hit_rate(
        "address:x", hour, 3, T0 + timedelta(minutes=61)
    )  # the window slid past the first


def test_interests_round_trip() -> None:
    i = Interests(
        description="d",
        keywords=("a", "b"),
        exclude=("x",),
        topics=("quantization",),
        authors=("Song Han",),
    )
    assert Interests.from_dict(i.to_dict()) == i
    assert Interests.from_dict(json.loads(json.dumps(i.to_dict()))) == i  # as the store keeps it
    assert Interests.from_dict(
        {"keywords": "not a list", "topics": [1], "description": None}
    ) == Interests(topics=("1",))


def test_a_subscriber_round_trips_through_json_and_ignores_newer_fields() -> None:
    sub = Subscriber(
        id="alice",
        name="Alice",
        email="a@example.org",
        schedule="0 9 * * 1-5",
        timezone="Europe/Berlin",
        max_items=5,
        interests=Interests("quantization", ("KV cache",), authors=("Song Han",)),
        origin="web",
    )
    data = json.loads(json.dumps(sub.to_dict()))
    assert Subscriber.from_dict(data) == sub
    assert Subscriber.from_dict({**data, "a_newer_field": 1}) == sub
    assert Subscriber.from_dict({"id": "bob"}) == Subscriber(id="bob")


# --- every member with origin and state (status, check), marks keyed to the address -------------


def test_members_have_an_origin_and_a_state(setup: tuple[Settings, Store]) -> None:
    settings, store = setup
    _web(store, "web-a", "carol@example.org")
    _web(store, "web-b", "dave@example.org")
    _web(store, "web-c", "erin@example.org")
    store.set_web_status("web-a", "active", T0 + timedelta(hours=1))
    store.set_web_status("web-c", "paused", T0 + timedelta(hours=2))
    store.set_subscriber_status("bob", "paused", T0 + timedelta(hours=3))
    members, problems = roster_members(settings, store)
    assert [(m.subscriber.id, m.origin, m.state, m.since) for m in members] == [
        ("alice", "file", "active", None),
        ("bob", "file", "paused", T0 + timedelta(hours=3)),
        ("web-a", "web", "active", T0 + timedelta(hours=1)),
        ("web-b", "web", "pending confirmation", T0),
        ("web-c", "web", "paused", T0 + timedelta(hours=2)),
    ]
    assert [m.subscriber.id for m in members if m.receives] == ids(settings, store)
    assert census(members) == (
        "1 from file, 1 from the web; not receiving: 2 paused, 1 pending confirmation"
    )
    assert {Path(p.path).name for p in problems} == {"broken.toml"}


def test_only_file_subscribers_that_all_receive_give_no_census(
    setup: tuple[Settings, Store],
) -> None:
    settings, store = setup
    assert census(roster_members(settings, store)[0]) == ""


def test_a_mark_is_for_the_address_that_made_it(setup: tuple[Settings, Store]) -> None:
    """bob unsubscribes; the file then names robert: robert gets digests, bob's mark is shown
    as ignored; bob's address back in the file is unsubscribed again."""
    settings, store = setup
    bob = settings.subscriptions_dir / "bob.toml"
    store.set_subscriber_status("bob", "unsubscribed", T0)  # as the web front records it
    assert ids(settings, store) == ["alice"]
    assert store.subscriber_marks()["bob"].address == "bob@example.org"  # tied on reading
    bob.write_text(FILE.format(name="Robert", sid="robert"))
    members, _ = roster_members(settings, store)
    robert = members[1]
    assert (robert.subscriber.email, robert.state, robert.old_mark) == (
        "robert@example.org",
        "active",
        True,
    )
    assert ids(settings, store) == ["alice", "bob"]
    assert census(members).endswith("; 1 mark for an old address ignored")
    bob.write_text(FILE.format(name="Bob", sid="BOB"))  # the old address (another case)
    assert ids(settings, store) == ["alice"]
    # a mark recorded with the address it is for applies only to it
    store.set_subscriber_status("bob", "paused", T0, address="someone@example.org")
    assert ids(settings, store) == ["alice", "bob"]


def test_one_file_subscriber_is_read_from_its_own_file_only(tmp_path: Path) -> None:
    subs = tmp_path / "subscriptions"
    subs.mkdir()
    (subs / "ann.toml").write_text('email = "ann@example.org"\n[interests]\nkeywords = ["x"]\n')
    (subs / "broken.toml").write_text("this is [not toml")
    (tmp_path / "outside.toml").write_text(
        'email = "o@example.org"\n[interests]\nkeywords = ["x"]\n'
    )
    settings = Settings(subscriptions_dir=subs)
    ann = file_subscriber(settings, "ann")
    assert ann is not None and ann.email == "ann@example.org"
    for sid in ("broken", "nobody", "../outside", ".hidden"):
        assert file_subscriber(settings, sid) is None, sid
