"""perceptual hashes, image sizes and the trash on items; background jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ITEM_COLUMNS = ("phash", "pixels", "size_bytes")


def upgrade() -> None:
    # All nullable: items stored before this revision have no perceptual hash until they
    # are written again, and nothing is in the trash.
    for name in _ITEM_COLUMNS:
        op.add_column("items", sa.Column(name, sa.BigInteger(), nullable=True))
    op.add_column("items", sa.Column("trashed_at", sa.DateTime(timezone=True), nullable=True))
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        "jobs",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column(
            "collection_id",
            sa.Integer(),
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("params", json, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_jobs_collection_id", "jobs", ["collection_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_collection_id", table_name="jobs")
    op.drop_table("jobs")
    with op.batch_alter_table("items") as batch:
        for name in (*_ITEM_COLUMNS, "trashed_at"):
            batch.drop_column(name)
