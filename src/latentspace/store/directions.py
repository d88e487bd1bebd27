"""Repository functions for named directions (``session`` keyword-only, caller commits)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from latentspace.errors import InvalidInput, NotFound
from latentspace.store.repository import NAME_PATTERN, vector_bytes
from latentspace.store.tables import CollectionRow, DirectionRow, utcnow

__all__ = ["delete_direction", "get_direction", "list_directions", "put_direction"]


def put_direction(
    *,
    session: Session,
    collection: CollectionRow,
    name: str,
    vector: np.ndarray,
    definition: dict[str, Any],
) -> DirectionRow:
    """Create or replace the named direction."""
    if not NAME_PATTERN.match(name):
        raise InvalidInput(
            f"invalid direction name {name!r}: 1-128 letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    row = session.scalar(
        select(DirectionRow).where(
            DirectionRow.collection_id == collection.id, DirectionRow.name == name
        )
    )
    if row is None:
        row = DirectionRow(collection_id=collection.id, name=name, created_at=utcnow())
        session.add(row)
    row.vector = vector_bytes(vector, collection.dim, name)
    row.definition = definition
    session.flush()
    return row


def get_direction(*, session: Session, collection: CollectionRow, name: str) -> DirectionRow:
    """The named direction.

    Raises:
        NotFound: no direction of that name in the collection.
    """
    row = session.scalar(
        select(DirectionRow).where(
            DirectionRow.collection_id == collection.id, DirectionRow.name == name
        )
    )
    if row is None:
        raise NotFound(f"direction {name!r} not found in collection {collection.name!r}")
    return row


def list_directions(*, session: Session, collection: CollectionRow) -> list[DirectionRow]:
    """The collection's directions, by name."""
    return list(
        session.scalars(
            select(DirectionRow)
            .where(DirectionRow.collection_id == collection.id)
            .order_by(DirectionRow.name)
        )
    )


def delete_direction(*, session: Session, collection: CollectionRow, name: str) -> None:
    """Remove the named direction (raises NotFound)."""
    session.delete(get_direction(session=session, collection=collection, name=name))
    session.flush()
