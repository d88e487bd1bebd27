"""Bringing an index up to date from the oplog: the rows other writers committed.

A process applies its own writes from memory (:meth:`LocalIndexes.apply`); what another
process (a second worker, another host on the same PostgreSQL) committed reaches it only
through the oplog. Replaying an item reads its current row and vector from SQL, so it does
not matter how many times, or in which order, the item changed since the index last saw it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from latentspace.index import FaissIndex, ManagedIndex
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow

__all__ = ["Tail", "replay"]

# Ops that change an item's vector or liveness; "text" and "meta" change only its fields.
VECTOR_OPS = frozenset({"upsert", "delete"})


@dataclass(frozen=True)
class Tail:
    """Oplog rows after some sequence: the newest sequence read, the items whose vector
    or liveness changed, and every item touched."""

    last: int
    vectors: frozenset[int]
    touched: frozenset[int]

    @classmethod
    def of(cls, rows: list[tuple[int, str, int]], *, skip: Iterable[int] = ()) -> Tail:
        """The rows' tail, leaving out the items in ``skip`` (a write's own)."""
        mine = set(skip)
        vectors = {i for _, op, i in rows if op in VECTOR_OPS and i not in mine}
        # a "model" row (a migration's swap) names no item: the index is reopened instead
        touched = {i for _, op, i in rows if i not in mine and op != "model"}
        return cls(rows[-1][0] if rows else 0, frozenset(vectors), frozenset(touched))


def replay(
    collection: CollectionRow,
    session: Session,
    index: FaissIndex | ManagedIndex,
    item_ids: Iterable[int],
) -> None:
    """Make ``index`` hold exactly the current live vectors of ``item_ids`` from SQL."""
    ids = sorted(set(item_ids))
    if not ids:
        return
    live = repo.items_by_ids(session=session, item_ids=ids)
    vectors = repo.vectors_of(session=session, item_ids=list(live), dim=collection.dim)
    gone = np.array([i for i in ids if i not in vectors], dtype=np.int64)
    if gone.size:
        index.remove(gone)
    if vectors:
        keys = np.fromiter(vectors, dtype=np.int64, count=len(vectors))
        index.add(keys, np.stack([vectors[k] for k in keys.tolist()]))
