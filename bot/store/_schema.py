"""The tables of the store, its schema version and the aware-UTC datetime column type."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.engine import Dialect

SCHEMA_VERSION = 1


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

entries = Table(
    "entries",
    metadata,
    Column("id", String(300), primary_key=True),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("url", Text, nullable=False, default=""),
    Column("authors", Text, nullable=False, default="[]"),  # JSON list
    Column("published", UTCDateTime, nullable=False, index=True),  # first-seen time when undated
    Column("source", String(200), nullable=False, default=""),
    Column("tags", Text, nullable=False, default="[]"),  # JSON list
    Column("extra", Text, nullable=False, default="{}"),  # JSON object
    Column("first_seen", UTCDateTime, nullable=False, index=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

source_state = Table(
    "source_state",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("etag", Text, nullable=False, default=""),
    Column("last_modified", Text, nullable=False, default=""),
    Column("cursor", Text, nullable=False, default="{}"),
    Column("last_fetch", UTCDateTime),
    Column("last_success", UTCDateTime),
    Column("last_error", Text, nullable=False, default=""),
    Column("last_counts", Text, nullable=False, default="{}"),
)

digests = Table(
    "digests",
    metadata,
    Column("id", String(300), primary_key=True),
    Column("subscriber_id", String(200), nullable=False),
    Column("slot", UTCDateTime, nullable=False),
    Column("status", String(20), nullable=False),  # pending | sent | failed | empty
    Column("channel", String(50), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("receipt", Text, nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("more", Integer, nullable=False, default=0),
    # Who is sending it and until when: a pending digest whose owner is gone is taken over.
    Column("owner", String(200), nullable=False, default=""),
    Column("lease_until", UTCDateTime),
    UniqueConstraint("subscriber_id", "slot", name="uq_digest_slot"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("subscriber_id", String(200), nullable=False),
    Column("entry_id", String(300), ForeignKey("entries.id"), nullable=False),
    Column("digest_id", String(300), ForeignKey("digests.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("why", Text, nullable=False, default="[]"),
    Column("topic", String(200), nullable=False, default=""),
    UniqueConstraint("subscriber_id", "entry_id", name="uq_delivery_entry"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("subscriber_id", String(200), primary_key=True),
    Column("entry_id", String(300), ForeignKey("entries.id"), primary_key=True),
    Column("vote", Integer, nullable=False),  # +1 or -1
    Column("created_at", UTCDateTime, nullable=False),
)


# --- web subscribers, statuses that win over files, used tokens, rate limits (bot.web, bot.roster) ---
web_subscribers = Table(
    "web_subscribers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),  # lower-cased, for lookups
    Column("name", Text, nullable=False, default=""),
    Column(
        "interests", Text, nullable=False, default="{}"
    ),  # JSON: description, keywords, exclude, topics, authors
    Column("schedule", String(100), nullable=False),
    Column("timezone", String(100), nullable=False),
    Column("max_items", Integer, nullable=False),
    Column("status", String(20), nullable=False),  # unconfirmed | active | paused | unsubscribed
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),  # the latest (re)subscription request
    Column("confirmed_at", UTCDateTime),
)

subscriber_status = Table(
    "subscriber_status",
    metadata,
    Column("subscriber_id", String(200), primary_key=True),
    Column(
        "status", String(20), nullable=False
    ),  # active | paused | unsubscribed; wins over the file
    Column("updated_at", UTCDateTime, nullable=False),
    # The address the mark was made for (revision 0002): it wins over the file only while the
    # file names this address. NULL (marks made before 0002): not yet tied to an address; it
    # applies to whatever address the file has, and the roster ties it to that address.
    Column("address", Text, nullable=True),
)

used_tokens = Table(
    "used_tokens",
    metadata,
    Column("nonce", String(100), primary_key=True),  # a hash of the used link
    Column("kind", String(50), nullable=False),
    Column("used_at", UTCDateTime, nullable=False),
)

rate_events = Table(
    "rate_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(100), nullable=False, index=True),  # a hash: no address or IP is stored
    Column("at", UTCDateTime, nullable=False, index=True),
)


# --- bounces, complaints and suspensions (bot.bounces) ---------------------------------------
bounces = Table(
    "bounces",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscriber_id", String(200), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # hard | soft | complaint
    Column("code", String(20), nullable=False, default=""),  # "550 5.1.1", "5.2.2", ""
    Column("reason", Text, nullable=False, default=""),
    Column("at", UTCDateTime, nullable=False),
    Column("digest_id", String(300), nullable=False, default=""),
    Column("message_id", String(300), nullable=False, default=""),  # the bounce's own, if any
)

suspensions = Table(
    "suspensions",
    metadata,
    Column("subscriber_id", String(200), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)


# --- Slack members and installations (bot.slack, issue 18) -----------------------------------
# A member of a Slack workspace who subscribed with /papers: keyed by (team, user), so one
# workspace never reads or changes another's rows.
slack_members = Table(
    "slack_members",
    metadata,
    Column("team_id", String(32), primary_key=True),
    Column("user_id", String(32), primary_key=True),
    Column("interests", Text, nullable=False, default="{}"),  # JSON, as web_subscribers
    Column("schedule", String(100), nullable=False),
    Column("timezone", String(100), nullable=False, default=""),  # set by the member ("": Slack's)
    Column("slack_timezone", String(100), nullable=False, default=""),  # from users.info
    Column("max_items", Integer, nullable=False),
    Column("status", String(20), nullable=False),  # active | paused | unsubscribed | uninstalled
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


# slack-sdk's SQLAlchemy installation and OAuth state stores, on digestbot's database: their
# tables exactly as slack-sdk's `build_bots_table`, `build_installations_table` and
# `build_oauth_states_table` make them (tests/test_slack_oauth.py compares the DDL), written out
# here so that opening the store does not import slack-sdk's SQLAlchemy modules; they are part
# of this metadata and of revision 0004, so `digestbot migrate` creates them and slack-sdk's
# `create_tables()` is never needed.
def _bot_columns() -> list[Column[object]]:
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("client_id", String(32), nullable=False),
        Column("app_id", String(32), nullable=False),
        Column("enterprise_id", String(32)),
        Column("enterprise_name", String(200)),
    ]


_TOKENS = ("bot_token", 200), ("bot_id", 32), ("bot_user_id", 32), ("bot_scopes", 1000)
slack_bots = Table(
    "slack_bots",
    metadata,
    *_bot_columns(),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    *(Column(name, String(size)) for name, size in _TOKENS),
    Column("bot_refresh_token", String(200)),
    Column("bot_token_expires_at", DateTime),
    Column("is_enterprise_install", Boolean, default=False, nullable=False),
    Column("installed_at", DateTime, nullable=False, default=func.now()),
    Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)
slack_installations = Table(
    "slack_installations",
    metadata,
    *_bot_columns(),
    Column("enterprise_url", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    *(Column(name, String(size)) for name, size in _TOKENS),
    Column("bot_refresh_token", String(200)),
    Column("bot_token_expires_at", DateTime),
    Column("user_id", String(32), nullable=False),
    Column("user_token", String(200)),
    Column("user_scopes", String(1000)),
    Column("user_refresh_token", String(200)),
    Column("user_token_expires_at", DateTime),
    Column("incoming_webhook_url", String(200)),
    Column("incoming_webhook_channel", String(200)),
    Column("incoming_webhook_channel_id", String(200)),
    Column("incoming_webhook_configuration_url", String(200)),
    Column("is_enterprise_install", Boolean, default=False, nullable=False),
    Column("token_type", String(32)),
    Column("installed_at", DateTime, nullable=False, default=func.now()),
    Index(
        "slack_installations_idx",
        "client_id",
        "enterprise_id",
        "team_id",
        "user_id",
        "installed_at",
    ),
)
slack_oauth_states = Table(
    "slack_oauth_states",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(200), nullable=False),
    Column("expire_at", DateTime, nullable=False),
)
