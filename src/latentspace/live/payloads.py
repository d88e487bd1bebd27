"""The payload indexes of every collection: filters answered from memory, kept current by
tailing the SQL oplog (see :mod:`latentspace.live.tailed`).

A collection's :class:`~latentspace.store.payload.PayloadIndex` is built from SQL the first
time a filter needs it (or by the warm-up after a start); a metadata patch, an auto-tag or
another host's write is seen by the next filter. SQL stays the reference the tests hold the
index equal to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from latentspace.live.tailed import Tailed
from latentspace.store import reads
from latentspace.store.payload import PayloadIndex
from latentspace.store.tables import CollectionRow

__all__ = ["PayloadIndexes", "PayloadStats"]


@dataclass(frozen=True)
class PayloadStats:
    """A payload index's items, distinct paths, and estimated bytes per path."""

    items: int
    paths: int
    memory_bytes: dict[str, int]


class PayloadIndexes(Tailed[PayloadIndex]):
    """Per-collection payload indexes (a view of :class:`~latentspace.live.LiveState`).

    Args:
        sessions: the SQL session factory metadata and the oplog are read from.
    """

    def _build(self, session: Session, collection: CollectionRow) -> PayloadIndex:
        return PayloadIndex.of(reads.live_metadata(session=session, collection=collection))

    def _update(self, session: Session, index: PayloadIndex, touched: list[int]) -> None:
        found = reads.metadata_of(session=session, item_ids=touched)
        index.remove(i for i in touched if i not in found)
        index.upsert(found.items())

    def matching(
        self, collection: CollectionRow, spec: dict[str, Any], *, seconds: float | None = None
    ) -> np.ndarray:
        """The sorted ids of the collection's live items that satisfy the (validated)
        filter, with every committed write applied.

        Raises:
            QueryTimeout: evaluating took longer than ``seconds``.
        """
        with self._current(collection) as index:
            return index.evaluate(spec, seconds=seconds)

    def describe(self, collection: CollectionRow) -> PayloadStats | None:
        """What the collection's payload index holds, or None before it is built (a start
        builds it in the background; a filter builds it at once)."""
        if self._built(collection) is None:
            return None
        with self._current(collection) as index:
            return PayloadStats(len(index), index.paths, index.memory())
