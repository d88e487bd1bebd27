"""The oplog and index manifests: what SQL says each collection's index must hold.

Every committed write appends oplog rows (seq, op, item id) in the same transaction as the
items; a live index records the last sequence it applied, and a saved index's manifest
the sequence it was saved at, so a restart replays exactly the rows after it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from latentspace.store.tables import CollectionRow, IndexManifestRow, OplogRow, utcnow

__all__ = ["after", "get_manifest", "last_seq", "put_manifest"]


def last_seq(*, session: Session, collection: CollectionRow) -> int:
    """The newest oplog sequence of the collection (0 when empty)."""
    return int(
        session.scalar(
            select(func.max(OplogRow.seq)).where(OplogRow.collection_id == collection.id)
        )
        or 0
    )


def after(*, session: Session, collection: CollectionRow, seq: int) -> list[tuple[int, str, int]]:
    """(seq, op, item id) of every oplog row after ``seq``, in order."""
    rows = session.execute(
        select(OplogRow.seq, OplogRow.op, OplogRow.item_id)
        .where(OplogRow.collection_id == collection.id, OplogRow.seq > seq)
        .order_by(OplogRow.seq)
    )
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
