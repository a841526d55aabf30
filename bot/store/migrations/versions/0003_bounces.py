"""Bounces, complaints and suspensions (bot.bounces, issue 19).

Two new tables and nothing else: digestbot 0.1 reads none of them, so `schema_version` stays 1.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `bounces` (one row per bounce or complaint) and `suspensions`."""
    op.create_table(
        "bounces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscriber_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("code", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("digest_id", sa.String(300), nullable=False),
        sa.Column("message_id", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_bounces_subscriber_id", "bounces", ["subscriber_id"])
    op.create_table(
        "suspensions",
        sa.Column("subscriber_id", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id"),
    )


def downgrade() -> None:
    """Drop both tables (development only: digestbot never downgrades by itself)."""
    op.drop_table("suspensions")
    op.drop_index("ix_bounces_subscriber_id", table_name="bounces")
    op.drop_table("bounces")
