"""The channel registry: what each channel declares, and everything that reads it — which channel
serves a subscriber, subscription file keys, the pool's rates, config tables, the outbox — and
the one address check that subscription files, the web form and the email channel share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from _digests import SLOT, digest, subscriber

from bot.addresses import is_address
from bot.channels import (
    CHANNELS,
    Channel,
    Field,
    channel_for,
    channel_of,
    rates,
    register,
    settings_tables,
)
from bot.channels.email import sender_address, wire_message
from bot.channels.outbox import Outbox
from bot.config import Settings, parse_settings
from bot.errors import PermanentSendError
from bot.models import Digest, Receipt
from bot.render import digest_data, render_email, slack_messages
from bot.subscriptions import parse_subscriber
from bot.web.forms import parse_preferences

SLACK = {"slack_channel": "#papers"}
HOOK = {"slack_webhook_env": "SLACK_WEBHOOK_PAPERS"}
OUTBOX = Settings(outbox_dir=Path("files"))  # the outbox chosen (settings made in code)


@pytest.mark.parametrize(
    ("fields", "settings", "served_by"),
    [
        ({}, OUTBOX, "outbox"),  # an email subscriber without SMTP
        ({}, Settings(smtp_url="smtp://127.0.0.1:2525"), "email"),
        ({"email": "", **SLACK}, OUTBOX, "outbox"),  # no token
        ({"email": "", **SLACK}, Settings(slack_token="xoxb-1"), "slack"),
        ({"email": "", **HOOK}, OUTBOX, "outbox"),  # the variable is not set
        (
            {"email": "", **HOOK},
            Settings(environ={"SLACK_WEBHOOK_PAPERS": "https://hooks"}),
            "slack",
        ),
        (
            {"email": "", **HOOK, **SLACK},
            Settings(environ={"SLACK_WEBHOOK_PAPERS": ""}, slack_token="x"),
            "slack",
        ),
        (
            {"email": ""},
            Settings(smtp_url="smtp://127.0.0.1:2525", slack_token="x"),
            "outbox",
        ),  # no address at all
    ],
)
def test_channel_for_as_before(fields: dict[str, str], settings: Settings, served_by: str) -> None:
    assert channel_for(subscriber(**fields), settings) == served_by


def test_rates_are_what_the_pool_limited_before() -> None:
    """What `workers.channel_rates` returned: [smtp] rate for all email; 1/s per Slack channel."""
    assert rates(Settings(smtp_rate=7.5)) == {"email": (7.5, False), "slack": (1.0, True)}
    assert rates(Settings(smtp_rate=0)) == {"email": (0.0, False), "slack": (1.0, True)}


def test_config_reads_the_channel_tables_the_registry_declares() -> None:
    """Every key a channel declares for its digestbot.toml table lands in the Settings attribute it names."""
    tables = settings_tables()
    assert tables == {
        "smtp": {"url": "smtp_url", "rate": "smtp_rate"},
        "slack": {"api_url": "slack_api_url"},
    }
    values = {"url": "smtp://mx.example.org:587", "rate": 3.0, "api_url": "http://127.0.0.1:9/api/"}
    raw = {table: {key: values[key] for key in keys} for table, keys in tables.items()}
    settings, problems = parse_settings(raw, "digestbot.toml", {})
    assert problems == []
    for table, keys in tables.items():
        for key, attr in keys.items():
            assert getattr(settings, attr) == raw[table][key]
        _, problems = parse_settings({table: {"nope": 1}}, "digestbot.toml", {})
        assert [p.key for p in problems] == [f"{table}.nope"]


def test_each_channel_names_its_renderer() -> None:
    settings = Settings(secret_key="k")
    d = digest(2)
    assert CHANNELS["email"].render(d, settings) == render_email(d, settings)
    slack = replace(d, subscriber=subscriber(email="", slack_channel="#papers"))
    assert CHANNELS["slack"].render(slack, settings) == slack_messages(slack, settings)
    assert Channel.render(d, settings) == digest_data(d, settings)


@pytest.fixture
def pigeon() -> Iterator[type[Channel]]:
    """A channel registered by a test alone, with a field and nothing else of its own."""

    @register("pigeon")
    class Pigeon(Channel):
        """Ties the digest to a bird."""

        fields = (Field("loft", 'loft = "…"'),)
        destination = "a pigeon loft"

        def send(self, digest: Digest) -> Receipt:
            return Receipt("pigeon", digest.subscriber.contact["loft"])

    try:
        yield Pigeon
    finally:
        CHANNELS.pop("pigeon")


def test_a_new_channel_needs_no_model_config_render_or_outbox_edit(
    pigeon: type[Channel], tmp_path: Path
) -> None:
    sub, problems = parse_subscriber(
        "p", {"loft": "north tower", "interests": {"keywords": ["x"]}}, "p.toml"
    )
    assert problems == [] and sub is not None and sub.contact == {"loft": "north tower"}
    assert channel_of(sub) is pigeon and channel_for(sub, Settings()) == "pigeon"
    assert sub.address == "north tower" and hash(sub) == hash(replace(sub))  # still hashable
    assert "pigeon" not in rates(Settings())  # it declares no rate
    # When it is not ready, the outbox writes what it would send (by default: digest_data as JSON).
    d = Digest("p.20260302T0700Z", sub, SLOT, digest(1).items)
    settings = Settings(outbox_dir=tmp_path, secret_key="k")
    Outbox(settings).send(d)
    written = json.loads((tmp_path / "p" / "p.20260302T0700Z.json").read_text())
    assert written == json.loads(json.dumps(digest_data(d, settings)))


def test_registration_refuses_a_second_name_or_a_taken_field(pigeon: type[Channel]) -> None:
    with pytest.raises(ValueError, match="channel 'pigeon' registered twice"):
        register("pigeon")(pigeon)

    class Other(pigeon):  # type: ignore[valid-type,misc]
        fields = (Field("email", 'email = "…"'),)

    with pytest.raises(ValueError, match="the subscriber field 'email' belongs to another channel"):
        register("other")(Other)
    assert "other" not in CHANNELS


# --- the one address check --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("alice@example.org", True),
        (
            "o'brien+papers@mail.example.org",
            True,
        ),  # the web form refused the apostrophe; a real address
        ("ALICE@EXAMPLE.ORG", True),
        (
            "alice@localhost",
            False,
        ),  # a recipient's domain has a dot (the files and the form said so)
        ("alice@example.", False),
        ("alice@.org", False),
        ("x:victim@example.org", False),  # a group (the subscription files let it through)
        ("victim(1)@example.org", False),  # a comment (the files let it through)
        ('"a b"@example.org', False),
        ("a,b@example.org", False),
        ("[a]@example.org", False),
        (
            "jörg@exämple.org",
            False,
        ),  # not ASCII: the channel could never send it (files and form took it)
        ("a@b@example.org", False),
        ("alice example.org", False),
        ("<alice@example.org>", False),
        ("a" * 243 + "@example.org", False),  # 255 characters (only the form had the 254 limit)
        ("a" * 242 + "@example.org", True),
    ],
)
def test_one_address_rule_in_files_form_and_channel(address: str, ok: bool) -> None:
    assert is_address(address) is ok
    _, problems = parse_subscriber(
        "a", {"email": address, "interests": {"keywords": ["x"]}}, "a.toml"
    )
    assert (problems == []) is ok
    _, errors = parse_preferences({"email": address, "keywords": "x"}, [], [], need_email=True)
    assert ("email" not in errors) is ok
    d = digest(1, sub=subscriber(email=address))
    if ok:
        assert wire_message(d, Settings(secret_key="k")).recipient == address
    else:
        with pytest.raises(PermanentSendError, match="is not a plain ASCII address"):
            wire_message(d, Settings(secret_key="k"))


def test_the_sender_may_be_on_this_machine() -> None:
    """The default From (digestbot@localhost) passes; everything else follows the recipients' rule."""
    assert sender_address(Settings()) == ("digestbot", "digestbot@localhost")
    assert is_address("digestbot@localhost", dotted=False) and not is_address(
        "x:y@localhost", dotted=False
    )
    with pytest.raises(PermanentSendError, match="is not an address"):
        sender_address(Settings(from_addr="Digest <jörg@example.org>"))
