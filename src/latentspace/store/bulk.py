"""Bulk writes of item rows: one prepared statement per table, run over all rows by the driver.

At a thousand rows, building and flushing ORM objects costs more than the SQL itself, and
even Core's ``executemany`` compiles parameters row by row (type processing of every value,
the same timestamp a thousand times). :func:`driver_insert` converts each column once
(a value shared by every row once in all) and hands the rows to the driver's own
``executemany``: SQLite's loop in C, psycopg's pipeline on PostgreSQL. New item ids are then
read back in one query by external id (unique within a collection).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from latentspace.errors import InvalidInput
from latentspace.store.tables import Base, CollectionRow, ItemRow, ItemVectorRow, OplogRow, utcnow
from latentspace.types import ItemKind

__all__ = [
    "ID_CHUNK",
    "ItemInput",
    "driver_insert",
    "insert_item_rows",
    "insert_items",
    "insert_oplog",
    "insert_vectors",
    "replace_metadata",
    "replace_vectors",
    "table_of",
    "vector_bytes",
]

# ids per IN (...) list: SQLite allows 32,766 parameters a statement
ID_CHUNK = 10_000


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
    # when it stops being served (None: the collection's ttl_seconds, if any, decides)
    expires_at: datetime | None = None


def vector_bytes(vector: np.ndarray, dim: int, external_id: str) -> bytes:
    """A vector as the float32 bytes stored for it."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if v.shape[0] != dim:
        raise InvalidInput(f"item {external_id!r}: vector has {v.shape[0]} dimensions, not {dim}")
    return v.tobytes()


def table_of(row_class: type[Base]) -> Table:
    """The Core table of a mapped row class."""
    table = row_class.__table__
    assert isinstance(table, Table)
    return table


def driver_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) with the driver's ``executemany``.

    Each column's values go through its type's bind processing as SQLAlchemy would do it,
    but a value that every row shares (the same object: a batch's timestamp, its
    collection id) is converted once. Every column with a Python-side default must be given:
    nothing fills them in here.
    """
    if not rows:
        return
    names = list(rows[0])
    missing = [c.name for c in table.columns if c.default is not None and c.name not in names]
    assert not missing, f"driver_insert into {table.name} needs {missing}"
    connection = session.connection()
    dialect = connection.dialect
    compiled = insert(table).values({n: None for n in names}).compile(dialect=dialect)
    columns = []
    for name in names:
        values = [row[name] for row in rows]
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            first = values[0]
            if all(v is first for v in values):
                values = [process(first)] * len(values)
            else:
                values = [process(v) for v in values]
        columns.append(values)
    if dialect.positional:
        order = [names.index(n) for n in compiled.positiontup or ()]
        params: list[Any] = list(zip(*(columns[i] for i in order), strict=True))
    else:
        params = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
    connection.exec_driver_sql(str(compiled), params)


def insert_items(
    session: Session,
    collection: CollectionRow,
    items: Sequence[ItemInput],
    now: datetime,
    expires: datetime | None = None,
) -> list[int]:
    """Insert new item rows; their ids, in the items' order. ``expires``: the expiry of
    items that carry none."""
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
            "expires_at": item.expires_at or expires,
        }
        for item in items
    ]
    return insert_item_rows(session, collection, rows)


def insert_item_rows(
    session: Session, collection: CollectionRow, rows: Sequence[dict[str, Any]]
) -> list[int]:
    """Insert item rows given column by column (see :func:`driver_insert`); their new ids,
    in the rows' order, read back by external id."""
    table = table_of(ItemRow)
    driver_insert(session, table, rows)
    external_ids = [row["external_id"] for row in rows]
    found = session.execute(
        select(table.c.external_id, table.c.id).where(
            table.c.collection_id == collection.id, table.c.external_id.in_(external_ids)
        )
    )
    ids = {external_id: item_id for external_id, item_id in found}
    return [ids[external_id] for external_id in external_ids]


def insert_vectors(session: Session, vectors: Sequence[tuple[int, bytes]]) -> None:
    """Insert vector rows, ``(item id, float32 bytes)``, with their checksums."""
    driver_insert(
        session,
        table_of(ItemVectorRow),
        [{"item_id": i, "vector": b, "checksum": zlib.crc32(b)} for i, b in vectors],
    )


def replace_vectors(session: Session, vectors: Sequence[tuple[int, bytes]]) -> None:
    """Replace the vector rows of updated items (deleted, then inserted in bulk); the
    deletes go in chunks of ids that stay under SQLite's bound on parameters."""
    ids = [item_id for item_id, _ in vectors]
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        session.execute(delete(ItemVectorRow).where(ItemVectorRow.item_id.in_(chunk)))
    insert_vectors(session, vectors)


def insert_oplog(
    session: Session, collection: CollectionRow, ops: Sequence[tuple[str, int]], now: datetime
) -> None:
    """Append ``(op, item id)`` oplog rows, in order (their seq follows it)."""
    driver_insert(
        session,
        table_of(OplogRow),
        [
            {"collection_id": collection.id, "op": op, "item_id": i, "created_at": now}
            for op, i in ops
        ],
    )


def replace_metadata(
    session: Session, collection: CollectionRow, changes: Sequence[tuple[ItemRow, dict[str, Any]]]
) -> None:
    """Give each row its new metadata, with one ``meta`` oplog row each (so other
    processes and the payload index refresh what they hold of it)."""
    if not changes:
        return
    now = utcnow()
    for row, metadata in changes:
        row.metadata_, row.updated_at = metadata, now
    session.flush()
    insert_oplog(session, collection, [("meta", row.id) for row, _ in changes], now)
