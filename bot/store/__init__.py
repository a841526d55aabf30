"""The store: SQLAlchemy Core tables and the only SQL in digestbot. SQLite by default, PostgreSQL by URL.

One module per concern: `_schema` (the tables), `_base` (engine, transactions, retries, migration),
`_entries` (entries and fetch state), the ledger in three: `_digest_rows` (digests as read),
`_claims` (claims and leases), `_ledger` (confirmation, feedback); and `_web` (web subscribers,
statuses, used tokens, rate limits); `_slack` (Slack members). `Store` joins them; import everything from here
(the modules are private: a public `bot.store.entries` module would shadow the `entries` table).
"""

from __future__ import annotations

from ..config import Settings
from ._base import RETRY_DELAYS, damaged, migrate, retrying, sqlite_path
from ._bounces import BounceRecords, BounceRow, Suspension
from ._claims import ANY_LEASE
from ._digest_rows import is_digest_of
from ._entries import EntryStore, SourceStatus, merge_entry
from ._ledger import DigestRow, Ledger, digest_id
from ._schema import (
    SCHEMA_VERSION,
    UTCDateTime,
    deliveries,
    digests,
    entries,
    feedback,
    metadata,
    rate_events,
    schema_version,
    slack_bots,
    slack_installations,
    slack_members,
    slack_oauth_states,
    source_state,
    subscriber_status,
    used_tokens,
    web_subscribers,
)
from ._slack import SlackMemberRow, SlackRecords
from ._web import SubscriberMark, WebRecords, WebSubscriberRow

__all__ = [
    "ANY_LEASE",
    "RETRY_DELAYS",
    "SCHEMA_VERSION",
    "BounceRow",
    "DigestRow",
    "SlackMemberRow",
    "SourceStatus",
    "Store",
    "SubscriberMark",
    "Suspension",
    "UTCDateTime",
    "WebSubscriberRow",
    "damaged",
    "deliveries",
    "digest_id",
    "digests",
    "entries",
    "feedback",
    "is_digest_of",
    "merge_entry",
    "metadata",
    "migrate",
    "open_store",
    "rate_events",
    "retrying",
    "schema_version",
    "slack_bots",
    "slack_installations",
    "slack_members",
    "slack_oauth_states",
    "source_state",
    "sqlite_path",
    "subscriber_status",
    "used_tokens",
    "web_subscribers",
]


class Store(EntryStore, Ledger, WebRecords, BounceRecords, SlackRecords):
    """The database behind digestbot: entries, fetch state, the delivery ledger, feedback and web subscribers.

    A context manager: `with open_store(settings) as store:` closes it at the end.
    """


def open_store(settings: Settings) -> Store:
    """The store these settings name, with their SQLite durability (the one way to open it)."""
    return Store(settings.database_url, settings.database_sqlite_synchronous)
