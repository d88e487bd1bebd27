"""The oplog and index manifests: what SQL says each collection's index must hold.

Every committed write appends oplog rows (seq, op, item id) in the same transaction as the
items; a live index records the last sequence it applied, and a saved index's manifest
the sequence it was saved at, so a restart replays exactly the rows after it.

Replicas (other processes on the same database) read the rows after the sequence they
applied, so the rows of one collection must become visible in sequence order: every write
transaction starts with :func:`serialize`, which makes writers of a collection commit one
after the other (SQLite: the database's write lock from the first statement; PostgreSQL: a
row lock on the collection), so a later sequence is never committed before an earlier one.
On PostgreSQL the transaction also sends ``NOTIFY`` on :data:`CHANNEL` (delivered at commit,
dropped on rollback) with the collection's id, so listening replicas apply it at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from latentspace.errors import Conflict
from latentspace.store.bulk import insert_oplog
from latentspace.store.tables import CollectionRow, IndexManifestRow, OplogRow, utcnow

__all__ = [
    "CHANNEL",
    "after",
    "get_manifest",
    "last_seq",
    "log_changed",
    "put_manifest",
    "serialize",
]

# The PostgreSQL channel every write transaction notifies (payload: the collection's id).
CHANNEL = "latentspace_oplog"


def serialize(*, session: Session, collection: CollectionRow) -> None:
    """Take the collection's write lock for the rest of the transaction (its first statement).

    SQLite takes the database's write lock now (``BEGIN IMMEDIATE``), not at the first
    write, so two processes never both read and then race to write (which SQLite answers
    with "database is locked" at once, past the busy timeout). PostgreSQL locks the
    collection's row (``SELECT … FOR UPDATE``) until commit.

    Raises:
        Conflict: the collection's model changed since ``collection`` was read (a model
            migration swapped it): a vector prepared in the old space must not be written.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        raw = connection.connection.dbapi_connection
        if raw is not None and not raw.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        current = connection.execute(
            text("SELECT fingerprint FROM collections WHERE id = :id"), {"id": collection.id}
        ).scalar()
    else:
        current = connection.execute(
            text("SELECT fingerprint FROM collections WHERE id = :id FOR UPDATE"),
            {"id": collection.id},
        ).scalar()
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_notify(:channel, :id)"),
                {"channel": CHANNEL, "id": str(collection.id)},
            )
    if current is not None and current != collection.fingerprint:
        raise Conflict(
            f"collection {collection.name!r} moved to another model (a migration) while this "
            "request was prepared; retry it"
        )


def last_seq(*, session: Session, collection: CollectionRow) -> int:
    """The newest oplog sequence of the collection (0 when empty)."""
    return int(
        session.scalar(
            select(func.max(OplogRow.seq)).where(OplogRow.collection_id == collection.id)
        )
        or 0
    )


def after(
    *, session: Session, collection: CollectionRow, seq: int, upto: int | None = None
) -> list[tuple[int, str, int]]:
    """(seq, op, item id) of every oplog row after ``seq`` (and up to ``upto``), in order."""
    query = select(OplogRow.seq, OplogRow.op, OplogRow.item_id).where(
        OplogRow.collection_id == collection.id, OplogRow.seq > seq
    )
    if upto is not None:
        query = query.where(OplogRow.seq <= upto)
    rows = session.execute(query.order_by(OplogRow.seq))
    return [(int(s), str(op), int(i)) for s, op, i in rows]


def get_manifest(*, session: Session, collection: CollectionRow) -> IndexManifestRow | None:
    """The recorded state of the collection's saved index, if any."""
    return session.get(IndexManifestRow, collection.id)


def put_manifest(
    *,
    session: Session,
    collection: CollectionRow,
    kind: str,
    params: dict[str, Any],
    count: int,
    oplog_seq: int,
    recall_at_10: float | None = None,
) -> IndexManifestRow:
    """Record what the collection's saved index holds."""
    row = session.get(IndexManifestRow, collection.id)
    if row is None:
        row = IndexManifestRow(collection_id=collection.id)
        session.add(row)
    row.kind, row.params, row.count, row.oplog_seq = kind, params, count, oplog_seq
    row.recall_at_10, row.saved_at = recall_at_10, utcnow()
    session.flush()
    return row


def log_changed(*, session: Session, collection: CollectionRow, item_ids: list[int]) -> None:
    """One ``meta`` oplog row per item whose fields (not its vector nor text) changed, so
    other processes refresh what they hold of it."""
    if item_ids:
        insert_oplog(session, collection, [("meta", i) for i in item_ids], utcnow())
