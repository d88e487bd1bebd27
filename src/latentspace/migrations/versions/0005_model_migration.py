"""model migration: vectors of a migration in progress, and fitted adapters between spaces

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "migration_vectors",
        sa.Column(
            "job_id",
            big_id,
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "item_id",
            big_id,
            sa.ForeignKey("items.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "adapters",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "collection_id",
            sa.Integer(),
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("source_model", sa.String(512), nullable=True),
        sa.Column("source_fingerprint", sa.String(64), nullable=False),
        sa.Column("target_fingerprint", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("dim_in", sa.Integer(), nullable=False),
        sa.Column("dim_out", sa.Integer(), nullable=False),
        sa.Column("matrix", sa.LargeBinary(), nullable=False),
        sa.Column("bias", sa.LargeBinary(), nullable=False),
        sa.Column("recall_at_10", sa.Float(), nullable=True),
        sa.Column("fitted_on", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "collection_id", "source_fingerprint", "target_fingerprint", name="uq_adapters_pair"
        ),
    )
    op.create_index("ix_adapters_collection_id", "adapters", ["collection_id"])


def downgrade() -> None:
    op.drop_index("ix_adapters_collection_id", table_name="adapters")
    op.drop_table("adapters")
    op.drop_table("migration_vectors")
