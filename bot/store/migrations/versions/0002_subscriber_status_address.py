"""subscriber_status.address: an unsubscribe or pause mark belongs to the address it was made for.

A file subscriber who unsubscribed and whose file then names another address is a new person:
the mark no longer applies (issue 17.12). Marks made before this revision recorded no address;
they keep NULL, which means "not yet tied to an address": such a mark applies to whatever address
the file has, as before, and digestbot ties it to that address the first time it reads the
roster (bot.roster). Nothing is guessed here: a migration cannot read the subscription files.
digestbot 0.1 (before migrations) reads this table correctly (it ignores the new column and its
new marks are NULL), so `schema_version` stays 1.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable column; existing marks keep NULL (see above)."""
    with op.batch_alter_table("subscriber_status", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.Text(), nullable=True))


def downgrade() -> None:
    """Undo it (digestbot never downgrades by itself: restore the backup instead)."""
    with op.batch_alter_table("subscriber_status", schema=None) as batch_op:
        batch_op.drop_column("address")
