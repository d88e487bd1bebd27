"""expiry: an item's expires_at (indexed per collection) and a collection's ttl_seconds

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 23:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # nullable columns: added in place on both databases (no table rewrite)
    op.add_column("items", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_items_collection_expires", "items", ["collection_id", "expires_at"])
    op.add_column("collections", sa.Column("ttl_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("ttl_seconds")
    op.drop_index("ix_items_collection_expires", table_name="items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("expires_at")
