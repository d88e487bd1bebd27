"""What searches read of items: the rows hits show, texts for the keyword index,
metadata for the payload index, and float32 vectors to rescore quantized candidates."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, Result, Row, select
from sqlalchemy.orm import Session

from latentspace.store.expiry import visible
from latentspace.store.repository import intact_vector
from latentspace.store.tables import CollectionRow, ItemRow, ItemVectorRow

__all__ = [
    "HIT_COLUMNS",
    "hit_rows",
    "live_hit_rows",
    "live_metadata",
    "live_texts",
    "metadata_of",
    "stored_vectors",
    "texts_of",
]

_CHUNK = 5_000

logger = logging.getLogger(__name__)

HIT_COLUMNS = (
    ItemRow.id,
    ItemRow.external_id,
    ItemRow.metadata_,
    ItemRow.text,
    ItemRow.uri,
    ItemRow.document_id,
    ItemRow.sha256,
)


def hit_rows(*, session: Session, item_ids: Sequence[int]) -> dict[int, Row[Any]]:
    """What a search result shows of live items (columns of :data:`HIT_COLUMNS`, the
    metadata under ``metadata_``), by primary key, in one query without ORM objects."""
    if not item_ids:
        return {}
    rows = session.execute(
        select(*HIT_COLUMNS).where(ItemRow.id.in_(list(item_ids)), visible(session))
    )
    return {row.id: row for row in rows}


def live_hit_rows(*, session: Session, collection: CollectionRow) -> Result[Any]:
    """The :data:`HIT_COLUMNS` of every live item of the collection, newest first, streamed
    (a server-side cursor on PostgreSQL: close the result when stopping early)."""
    return session.execute(
        select(*HIT_COLUMNS)
        .where(ItemRow.collection_id == collection.id, ItemRow.deleted.is_(False))
        .order_by(ItemRow.id.desc())
        .execution_options(yield_per=_CHUNK)
    )


def live_texts(*, session: Session, collection: CollectionRow) -> dict[int, str]:
    """Item id → text of every live item of the collection that has one."""
    rows = session.execute(
        select(ItemRow.id, ItemRow.text).where(
            ItemRow.collection_id == collection.id,
            ItemRow.deleted.is_(False),
            ItemRow.text.is_not(None),
        )
    )
    return {int(i): str(t) for i, t in rows}


def texts_of(*, session: Session, item_ids: Sequence[int]) -> dict[int, str]:
    """Item id → text of those of ``item_ids`` that are live and have a text."""
    out: dict[int, str] = {}
    for start in range(0, len(item_ids), _CHUNK):
        rows = session.execute(
            select(ItemRow.id, ItemRow.text).where(
                ItemRow.id.in_(item_ids[start : start + _CHUNK]),
                ItemRow.deleted.is_(False),
                ItemRow.text.is_not(None),
            )
        )
        out.update({int(i): str(t) for i, t in rows})
    return out


def live_metadata(*, session: Session, collection: CollectionRow) -> list[tuple[int, Any]]:
    """``(item id, metadata)`` of every live item of the collection."""
    rows = session.execute(
        select(ItemRow.id, ItemRow.metadata_)
        .where(ItemRow.collection_id == collection.id, ItemRow.deleted.is_(False))
        .execution_options(yield_per=_CHUNK)
    )
    return [(int(i), m) for i, m in rows]


def metadata_of(*, session: Session, item_ids: Sequence[int]) -> dict[int, Any]:
    """Item id → metadata of those of ``item_ids`` that are live."""
    out: dict[int, Any] = {}
    for start in range(0, len(item_ids), _CHUNK):
        rows = session.execute(
            select(ItemRow.id, ItemRow.metadata_).where(
                ItemRow.id.in_(item_ids[start : start + _CHUNK]), ItemRow.deleted.is_(False)
            )
        )
        out.update({int(i): m for i, m in rows})
    return out


def stored_vectors(*, connection: Connection, item_ids: Sequence[int], dim: int) -> dict[int, Any]:
    """Stored float32 vectors by item id, for rescoring a quantized index's candidates.

    One statement in the driver's own SQL (a search runs this per query: SQLAlchemy's
    statement building took ~4× the query itself for 30 rows). A vector failing its
    checksum is left out and logged, as a rebuild leaves it out.
    """
    if not item_ids:
        return {}
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    marks = ",".join(mark for _ in item_ids)
    rows = connection.exec_driver_sql(
        f"SELECT item_id, vector, checksum FROM {ItemVectorRow.__tablename__} "
        f"WHERE item_id IN ({marks})",
        tuple(int(i) for i in item_ids),
    )
    out = {}
    for item_id, blob, checksum in rows:
        if intact_vector(blob, checksum, dim):
            out[int(item_id)] = np.frombuffer(blob, dtype=np.float32, count=dim)
        else:
            logger.error("the stored vector of item %d fails its checksum; not served", item_id)
    return out
