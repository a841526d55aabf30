"""The schema digestbot created before migrations (its `schema_version` 1), exactly.

A database made by an earlier digestbot already has these tables: it is stamped at this
revision, not created again (bot.store.migrations.upgrade). Types are the database's own
(`sa.DateTime`, not the store's UTCDateTime decorator), so this script never changes when the
Python side does.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the tables, their indexes and the schema_version row an older digestbot checks."""
    version = op.create_table("schema_version", sa.Column("version", sa.Integer(), nullable=False))
    op.bulk_insert(version, [{"version": 1}])
    op.create_table(
        "entries",
        sa.Column("id", sa.String(300), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("authors", sa.Text(), nullable=False),
        sa.Column("published", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_entries_first_seen", "entries", ["first_seen"])
    op.create_index("ix_entries_published", "entries", ["published"])
    op.create_table(
        "source_state",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("last_modified", sa.Text(), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("last_fetch", sa.DateTime(), nullable=True),
        sa.Column("last_success", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("last_counts", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    _ledger()
    _web()


def _ledger() -> None:
    """digests, deliveries, feedback."""
    op.create_table(
        "digests",
        sa.Column("id", sa.String(300), nullable=False),
        sa.Column("subscriber_id", sa.String(200), nullable=False),
        sa.Column("slot", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(50), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("more", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "slot", name="uq_digest_slot"),
    )
    op.create_table(
        "deliveries",
        sa.Column("subscriber_id", sa.String(200), nullable=False),
        sa.Column("entry_id", sa.String(300), nullable=False),
        sa.Column("digest_id", sa.String(300), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.UniqueConstraint("subscriber_id", "entry_id", name="uq_delivery_entry"),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"]),
        sa.ForeignKeyConstraint(["digest_id"], ["digests.id"]),
    )
    op.create_index("ix_deliveries_digest_id", "deliveries", ["digest_id"])
    op.create_table(
        "feedback",
        sa.Column("subscriber_id", sa.String(200), nullable=False),
        sa.Column("entry_id", sa.String(300), nullable=False),
        sa.Column("vote", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id", "entry_id"),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"]),
    )


def _web() -> None:
    """web_subscribers, subscriber_status, used_tokens, rate_events."""
    op.create_table(
        "web_subscribers",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("interests", sa.Text(), nullable=False),
        sa.Column("schedule", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(100), nullable=False),
        sa.Column("max_items", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email_key"),
    )
    op.create_table(
        "subscriber_status",
        sa.Column("subscriber_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id"),
    )
    op.create_table(
        "used_tokens",
        sa.Column("nonce", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("nonce"),
    )
    op.create_table(
        "rate_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rate_events_at", "rate_events", ["at"])
    op.create_index("ix_rate_events_key", "rate_events", ["key"])


def downgrade() -> None:
    """Drop every table (digestbot never downgrades by itself: restore the backup instead)."""
    for table in (
        "rate_events",
        "used_tokens",
        "subscriber_status",
        "web_subscribers",
        "feedback",
        "deliveries",
        "digests",
        "source_state",
        "entries",
        "schema_version",
    ):
        op.drop_table(table)
