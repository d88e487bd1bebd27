"""per-collection keyword analysis settings

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Null means the defaults, so existing collections need no backfill.
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.add_column("collections", sa.Column("keyword", json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("keyword")
