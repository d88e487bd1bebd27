"""Bulk writes of item rows: one multi-row statement per table, not an ORM object per row.

At a thousand rows, building and flushing ORM objects costs more than the SQL itself;
``INSERT … RETURNING`` (batched by SQLAlchemy's insertmanyvalues on
SQLite and PostgreSQL alike) gives the new ids in a few round trips per batch.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Table, delete, insert
from sqlalchemy.orm import Session

from latentspace.errors import InvalidInput
from latentspace.store.tables import Base, CollectionRow, ItemRow, ItemVectorRow, OplogRow
from latentspace.types import ItemKind

__all__ = [
    "ItemInput",
    "insert_items",
    "insert_oplog",
    "insert_vectors",
    "replace_vectors",
    "vector_bytes",
]


@dataclass(frozen=True)
class ItemInput:
    """One item to store: its external id, content hash, vector and metadata."""

    external_id: str
    kind: ItemKind
    sha256: str
    vector: np.ndarray
    text: str | None = None
    uri: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    document_id: str | None = None
    # an image's perceptual hash (signed 64-bit), decoded pixels and file bytes
    phash: int | None = None
    pixels: int | None = None
    size_bytes: int | None = None


def vector_bytes(vector: np.ndarray, dim: int, external_id: str) -> bytes:
    """A vector as the float32 bytes stored for it."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if v.shape[0] != dim:
        raise InvalidInput(f"item {external_id!r}: vector has {v.shape[0]} dimensions, not {dim}")
    return v.tobytes()


def _table(row_class: type[Base]) -> Table:
    table = row_class.__table__
    assert isinstance(table, Table)
    return table


def insert_items(
    session: Session, collection: CollectionRow, items: Sequence[ItemInput], now: datetime
) -> list[int]:
    """Insert new item rows; their ids, in the items' order."""
    rows = [
        {
            "collection_id": collection.id,
            "external_id": item.external_id,
            "created_at": now,
            "updated_at": now,
            "deleted": False,
            "kind": item.kind,
            "sha256": item.sha256,
            "uri": item.uri,
            "text": item.text,
            "metadata": item.metadata,
            "document_id": item.document_id,
            "phash": item.phash,
            "pixels": item.pixels,
            "size_bytes": item.size_bytes,
        }
        for item in items
    ]
    # Core statements on the tables, not ORM bulk inserts: no per-row ORM bookkeeping.
    # Matched back by external id (unique in a batch): asking SQLAlchemy to keep the rows'
    # order needs a sentinel column, without which it inserts one row per statement.
    table = _table(ItemRow)
    statement = insert(table).returning(table.c.external_id, table.c.id)
    ids = {external_id: item_id for external_id, item_id in session.execute(statement, rows)}
    return [ids[item.external_id] for item in items]


def insert_vectors(session: Session, vectors: Sequence[tuple[int, bytes]]) -> None:
    """Insert vector rows, ``(item id, float32 bytes)``, with their checksums."""
    session.execute(
        insert(_table(ItemVectorRow)),
        [{"item_id": i, "vector": b, "checksum": zlib.crc32(b)} for i, b in vectors],
    )


def replace_vectors(session: Session, vectors: Sequence[tuple[int, bytes]]) -> None:
    """Replace the vector rows of updated items (deleted, then inserted in bulk)."""
    ids = [item_id for item_id, _ in vectors]
    session.execute(delete(ItemVectorRow).where(ItemVectorRow.item_id.in_(ids)))
    insert_vectors(session, vectors)


def insert_oplog(
    session: Session, collection: CollectionRow, ops: Sequence[tuple[str, int]], now: datetime
) -> None:
    """Append ``(op, item id)`` oplog rows, in order (their seq follows it)."""
    if ops:
        session.execute(
            insert(_table(OplogRow)),
            [
                {"collection_id": collection.id, "op": op, "item_id": i, "created_at": now}
                for op, i in ops
            ],
        )
