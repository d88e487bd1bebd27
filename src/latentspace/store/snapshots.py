"""The SQL side of snapshots: every live item of a collection out, page by page, and a
restored collection in, as one transaction's worth of bulk statements (the caller commits).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from latentspace.errors import CorruptVector
from latentspace.store.bulk import driver_insert, insert_item_rows, insert_oplog, insert_vectors
from latentspace.store.repository import intact_vector, live_item_pages
from latentspace.store.tables import (
    CollectionRow,
    DirectionRow,
    ItemRow,
    ItemVectorRow,
    as_utc,
)

__all__ = ["ITEM_FIELDS", "SnapshotItem", "insert_restored", "iter_snapshot_items"]

# The item columns a snapshot carries, besides the id, the timestamps and the vector.
ITEM_FIELDS = (
    "kind",
    "sha256",
    "uri",
    "text",
    "metadata",
    "document_id",
    "phash",
    "pixels",
    "size_bytes",
    "expires_at",
)


@dataclass(frozen=True)
class SnapshotItem:
    """One live item as a snapshot holds it: its fields by column name and its vector bytes."""

    external_id: str
    fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    vector: bytes


def iter_snapshot_items(
    *, session: Session, collection: CollectionRow, page: int = 2000
) -> Iterator[list[SnapshotItem]]:
    """Every live item with its vector, in id order, ``page`` at a time.

    Raises:
        CorruptVector: a stored vector fails its checksum (a snapshot never carries one).
    """
    columns = (ItemRow, ItemVectorRow.vector, ItemVectorRow.checksum)
    pages = live_item_pages(session=session, collection=collection, columns=columns, page=page)
    for rows in pages:
        out = []
        for row, blob, checksum, _ in rows:
            if not intact_vector(blob, checksum, collection.dim):
                raise CorruptVector(
                    f"the stored vector of item {row.external_id!r} fails its checksum; "
                    "re-ingest or delete it before taking a snapshot"
                )
            fields = {
                "kind": row.kind,
                "sha256": row.sha256,
                "uri": row.uri,
                "text": row.text,
                "metadata": row.metadata_,
                "document_id": row.document_id,
                "phash": row.phash,
                "pixels": row.pixels,
                "size_bytes": row.size_bytes,
                "expires_at": as_utc(row.expires_at).isoformat() if row.expires_at else None,
            }
            created, updated = as_utc(row.created_at), as_utc(row.updated_at)
            out.append(SnapshotItem(row.external_id, fields, created, updated, bytes(blob)))
        yield out


def insert_restored(
    *,
    session: Session,
    collection: CollectionRow,
    items: Sequence[SnapshotItem],
    directions: Sequence[tuple[str, bytes, dict[str, Any], datetime]],
    now: datetime,
) -> None:
    """Insert a restored collection's items, vectors, oplog and directions (not committed).

    One ``upsert`` oplog row per item, in the items' order, so the vector and keyword
    indexes build from SQL as they would after ingest.
    """
    for start in range(0, len(items), 5000):
        part = items[start : start + 5000]
        rows = [
            {
                "collection_id": collection.id,
                "external_id": item.external_id,
                "created_at": item.created_at,
                "updated_at": item.updated_at,
                "deleted": False,
                **item.fields,
            }
            for item in part
        ]
        ids = insert_item_rows(session, collection, rows)
        insert_vectors(session, [(i, item.vector) for i, item in zip(ids, part, strict=True)])
        insert_oplog(session, collection, [("upsert", i) for i in ids], now)
    driver_insert(
        session,
        DirectionRow.__table__,  # type: ignore[arg-type]
        [
            {
                "collection_id": collection.id,
                "name": name,
                "vector": vector,
                "definition": definition,
                "created_at": created_at,
            }
            for name, vector, definition, created_at in directions
        ],
    )
