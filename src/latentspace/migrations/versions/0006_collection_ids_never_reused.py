"""collection ids are never reused: SQLite's collections table gets AUTOINCREMENT

Without AUTOINCREMENT SQLite hands the id of the newest deleted row to the next insert, and
everything kept by collection id (index files, maps, caches of other processes) would be
served to a new collection. PostgreSQL's SERIAL sequence never reuses an id: nothing to do.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _recreate(autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    # The table is copied, dropped and renamed: with foreign keys on, the drop would delete
    # every item through ON DELETE CASCADE. The environment turns them off for SQLite.
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("SQLite foreign keys must be off while the collections table is copied")
    with op.batch_alter_table(
        "collections", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass
    # Copying the rows with their ids sets the sequence to the largest id kept.


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
