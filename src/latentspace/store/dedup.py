"""Repository functions for the duplicate tiers and the trash (``session`` keyword-only,
caller commits).

The trash is soft deletion with a timestamp: a trashed item is ``deleted`` (searches,
listings and duplicate checks no longer see it) and keeps its row, vector and original, so
a restore within the retention period brings it back as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from latentspace.errors import NotFound
from latentspace.store.bulk import insert_oplog
from latentspace.store.tables import CollectionRow, ItemRow, as_utc, utcnow

__all__ = ["live_phashes", "live_rows", "restore", "trash", "trashed"]


def live_phashes(
    *, session: Session, collection: CollectionRow, item_ids: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Item ids and perceptual hashes of the live items that have one (of ``item_ids``,
    when given), in id order."""
    query = select(ItemRow.id, ItemRow.phash).where(
        ItemRow.collection_id == collection.id,
        ItemRow.deleted.is_(False),
        ItemRow.phash.is_not(None),
    )
    if item_ids is not None:
        query = query.where(ItemRow.id.in_(list(item_ids)))
    # a value that is not an integer reads as None (tables.StoredInt): left out
    rows = [r for r in session.execute(query.order_by(ItemRow.id)) if r[1] is not None]
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    hashes = np.fromiter((r[1] for r in rows), np.int64, len(rows))
    return ids, hashes


def live_rows(
    *, session: Session, collection: CollectionRow, external_ids: Sequence[str]
) -> dict[str, ItemRow]:
    """Live items by external id.

    Raises:
        NotFound: one of ``external_ids`` is not a live item (the first one named).
    """
    rows = _by_external_id(session, collection, external_ids, deleted=False)
    for external_id in external_ids:
        if external_id not in rows:
            raise NotFound(f"item {external_id!r} not found in collection {collection.name!r}")
    return rows


def _by_external_id(
    session: Session, collection: CollectionRow, external_ids: Sequence[str], *, deleted: bool
) -> dict[str, ItemRow]:
    return {
        row.external_id: row
        for row in session.scalars(
            select(ItemRow).where(
                ItemRow.collection_id == collection.id,
                ItemRow.external_id.in_(list(external_ids)),
                ItemRow.deleted.is_(deleted),
            )
        )
    }


def trash(*, session: Session, collection: CollectionRow, rows: Sequence[ItemRow]) -> datetime:
    """Move live items to the trash (one oplog delete each); when they were trashed."""
    now = utcnow()
    for row in rows:
        row.deleted, row.trashed_at, row.updated_at = True, now, now
    session.flush()
    insert_oplog(session, collection, [("delete", row.id) for row in rows], now)
    return now


def trashed(
    *, session: Session, collection: CollectionRow, since: datetime, limit: int, after: int = 0
) -> list[ItemRow]:
    """Items trashed at or after ``since`` (still restorable), in id order after ``after``."""
    return list(
        session.scalars(
            select(ItemRow)
            .where(
                ItemRow.collection_id == collection.id,
                ItemRow.deleted.is_(True),
                ItemRow.trashed_at.is_not(None),
                ItemRow.trashed_at >= since,
                ItemRow.id > after,
            )
            .order_by(ItemRow.id)
            .limit(limit)
        )
    )


def restore(
    *, session: Session, collection: CollectionRow, external_ids: Sequence[str], since: datetime
) -> list[ItemRow]:
    """Bring trashed items back (one oplog upsert each), in the order named.

    Raises:
        NotFound: an id that is not in the trash, or was trashed before ``since`` (past
            the retention period).
    """
    rows = _by_external_id(session, collection, external_ids, deleted=True)
    for external_id in external_ids:
        row = rows.get(external_id)
        if row is None or row.trashed_at is None or as_utc(row.trashed_at) < since:
            raise NotFound(
                f"item {external_id!r} is not in the trash of collection {collection.name!r} "
                "(never trashed, restored already, or past the retention period)"
            )
    now = utcnow()
    ordered = [rows[e] for e in external_ids]
    for row in ordered:
        row.deleted, row.trashed_at, row.updated_at = False, None, now
    session.flush()
    insert_oplog(session, collection, [("upsert", row.id) for row in ordered], now)
    return ordered
