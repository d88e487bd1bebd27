"""What searches read of items: the rows hits show, texts for the keyword index and
metadata for the payload index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Result, Row, select
from sqlalchemy.orm import Session

from latentspace.store.tables import CollectionRow, ItemRow

__all__ = [
    "HIT_COLUMNS",
    "hit_rows",
    "live_hit_rows",
    "live_metadata",
    "live_texts",
    "metadata_of",
    "texts_of",
]

_CHUNK = 5_000

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
        select(*HIT_COLUMNS).where(ItemRow.id.in_(list(item_ids)), ItemRow.deleted.is_(False))
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
