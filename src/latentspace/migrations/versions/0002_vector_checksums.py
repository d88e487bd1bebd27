"""a CRC-32 per stored vector

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5_000


def upgrade() -> None:
    op.add_column("item_vectors", sa.Column("checksum", sa.BigInteger(), nullable=True))
    # Backfill: the stored bytes are taken as they are now (they were never checked).
    vectors = sa.table(
        "item_vectors",
        sa.column("item_id", sa.BigInteger()),
        sa.column("vector", sa.LargeBinary()),
        sa.column("checksum", sa.BigInteger()),
    )
    connection = op.get_bind()
    after = -1
    while True:
        rows = connection.execute(
            sa.select(vectors.c.item_id, vectors.c.vector)
            .where(vectors.c.item_id > after)
            .order_by(vectors.c.item_id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        connection.execute(
            vectors.update()
            .where(vectors.c.item_id == sa.bindparam("id"))
            .values(checksum=sa.bindparam("crc")),
            [{"id": item_id, "crc": zlib.crc32(blob)} for item_id, blob in rows],
        )
        after = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("item_vectors") as batch:
        batch.drop_column("checksum")
