"""Expiry in SQL: which items are visible now, which expire, and the clock that says when.

An item whose ``expires_at`` has passed is invisible to every read at once (the
:func:`visible` condition, and the live view that search excludes it by); the sweep
(``service.expiry``) then deletes it through the oplog like any other delete. "Now" is the
session factory's clock (``session.info["clock"]``), so tests control time and every
query of one request agrees on it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from latentspace.store.tables import CollectionRow, ItemRow, as_utc, utcnow

__all__ = ["Clock", "expired_ids", "expiries_of", "expiring", "now", "visible"]

Clock = Callable[[], datetime]


def now(session: Session) -> datetime:
    """The session factory's clock's time (UTC)."""
    clock: Clock = session.info.get("clock", utcnow)
    return clock()


def visible(session: Session) -> ColumnElement[bool]:
    """The condition of items a read serves: live, and not past their expiry."""
    return and_(
        ItemRow.deleted.is_(False),
        or_(ItemRow.expires_at.is_(None), ItemRow.expires_at > now(session)),
    )


def expiring(*, session: Session, collection: CollectionRow) -> tuple[np.ndarray, np.ndarray]:
    """The collection's live items that carry an expiry: their ids and their expiries as
    POSIX seconds."""
    return _pairs(
        session,
        ItemRow.collection_id == collection.id,
        ItemRow.deleted.is_(False),
        ItemRow.expires_at.is_not(None),
    )


def expiries_of(*, session: Session, item_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Of these items, the live ones that carry an expiry: ids and expiries (POSIX s)."""
    return _pairs(
        session,
        ItemRow.id.in_(item_ids),
        ItemRow.deleted.is_(False),
        ItemRow.expires_at.is_not(None),
    )


def _pairs(session: Session, *where: ColumnElement[bool]) -> tuple[np.ndarray, np.ndarray]:
    found = session.execute(select(ItemRow.id, ItemRow.expires_at).where(*where))
    rows = [(i, as_utc(t).timestamp()) for i, t in found if t is not None]
    ids = np.fromiter((i for i, _ in rows), dtype=np.int64, count=len(rows))
    times = np.fromiter((t for _, t in rows), dtype=np.float64, count=len(rows))
    return ids, times


def expired_ids(*, session: Session, collection: CollectionRow, limit: int) -> list[str]:
    """External ids of up to ``limit`` live items of the collection past their expiry."""
    return list(
        session.scalars(
            select(ItemRow.external_id)
            .where(
                ItemRow.collection_id == collection.id,
                ItemRow.deleted.is_(False),
                ItemRow.expires_at.is_not(None),
                ItemRow.expires_at <= now(session),
            )
            .order_by(ItemRow.expires_at)
            .limit(limit)
        )
    )
