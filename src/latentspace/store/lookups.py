"""Lookups by content hash, document, position and filter: duplicates, documents, listing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from latentspace.store.engine import statement_deadline
from latentspace.store.expiry import visible
from latentspace.store.filters import compile_filter
from latentspace.store.tables import CollectionRow, ItemRow

__all__ = [
    "document_items",
    "filter_item_ids",
    "ids_by_sha256",
    "item_id_of",
    "list_items",
    "live_ids",
    "live_sha256",
    "sha256_groups",
]


def live_ids(
    *, session: Session, collection: CollectionRow, external_ids: Sequence[str]
) -> np.ndarray:
    """Item ids (sorted) of the live items among ``external_ids``; unknown ids are left out."""
    found: list[int] = []
    unique = sorted(set(external_ids))
    for start in range(0, len(unique), 5000):  # well under every database's bound-variable cap
        found += session.scalars(
            select(ItemRow.id).where(
                ItemRow.collection_id == collection.id,
                ItemRow.external_id.in_(unique[start : start + 5000]),
                visible(session),
            )
        )
    return np.unique(np.asarray(found, dtype=np.int64))


def live_sha256(*, session: Session, collection: CollectionRow) -> set[str]:
    """The content hashes of the collection's live items."""
    return set(
        session.scalars(
            select(ItemRow.sha256).where(ItemRow.collection_id == collection.id, visible(session))
        )
    )


def ids_by_sha256(
    *, session: Session, collection: CollectionRow, digests: Sequence[str]
) -> dict[str, list[tuple[int, str]]]:
    """(item id, external id) of live items whose content hash is one of ``digests``,
    grouped by hash (id order), read without building ORM objects."""
    if not digests:
        return {}
    rows = session.execute(
        select(ItemRow.id, ItemRow.external_id, ItemRow.sha256)
        .where(
            ItemRow.collection_id == collection.id,
            ItemRow.sha256.in_(list(set(digests))),
            visible(session),
        )
        .order_by(ItemRow.id)
    )
    out: dict[str, list[tuple[int, str]]] = {}
    for item_id, external_id, sha in rows:
        out.setdefault(sha, []).append((int(item_id), str(external_id)))
    return out


def sha256_groups(*, session: Session, collection: CollectionRow) -> list[list[ItemRow]]:
    """Groups of two or more live items with the same content hash (exact duplicates)."""
    shared = (
        select(ItemRow.sha256)
        .where(ItemRow.collection_id == collection.id, visible(session))
        .group_by(ItemRow.sha256)
        .having(func.count() > 1)
    )
    rows = session.scalars(
        select(ItemRow)
        .where(
            ItemRow.collection_id == collection.id,
            visible(session),
            ItemRow.sha256.in_(shared),
        )
        .order_by(ItemRow.sha256, ItemRow.id)
    )
    groups: dict[str, list[ItemRow]] = {}
    for row in rows:
        groups.setdefault(row.sha256, []).append(row)
    return list(groups.values())


def document_items(
    *, session: Session, collection: CollectionRow, document_ids: Sequence[str]
) -> list[ItemRow]:
    """Live items (chunks) that belong to any of ``document_ids``."""
    if not document_ids:
        return []
    return list(
        session.scalars(
            select(ItemRow).where(
                ItemRow.collection_id == collection.id,
                ItemRow.document_id.in_(list(document_ids)),
                ItemRow.deleted.is_(False),
            )
        )
    )


def list_items(
    *, session: Session, collection: CollectionRow, limit: int, after: int = 0
) -> list[ItemRow]:
    """Live items in id order, ``limit`` at a time after item id ``after`` (keyset paging)."""
    return list(
        session.scalars(
            select(ItemRow)
            .where(
                ItemRow.collection_id == collection.id,
                visible(session),
                ItemRow.id > after,
            )
            .order_by(ItemRow.id)
            .limit(limit)
        )
    )


def item_id_of(*, session: Session, collection: CollectionRow, external_id: str) -> int | None:
    """The item id of ``external_id``, live or deleted (None: never stored): where a
    cursor that names an item resumes, even after that item went away."""
    return session.scalar(
        select(ItemRow.id).where(
            ItemRow.collection_id == collection.id, ItemRow.external_id == external_id
        )
    )


def filter_item_ids(
    *,
    session: Session,
    collection: CollectionRow,
    spec: dict[str, Any],
    limit: int | None = None,
    deadline: float | None = None,
) -> np.ndarray:
    """Ids of live items whose metadata matches the filter ``spec``.

    Raises:
        InvalidInput: the filter does not validate.
        QueryTimeout: the statement ran past ``deadline`` seconds.
    """
    dialect = session.get_bind().dialect.name
    query = select(ItemRow.id).where(
        ItemRow.collection_id == collection.id,
        visible(session),
        compile_filter(spec, ItemRow.metadata_, dialect),
    )
    if limit is not None:
        query = query.limit(limit)
    with statement_deadline(session, deadline):
        return np.fromiter(session.scalars(query), dtype=np.int64)
