"""The payload indexes of every collection: filters answered from memory, kept current by
tailing the SQL oplog.

A collection's :class:`~latentspace.store.payload.PayloadIndex` is built from SQL the first
time a filter needs it, then brought up to date before each use by the oplog rows committed
since (by any process): the items those rows touched are read again, so a metadata patch,
an auto-tag or another host's write is seen by the next filter. SQL stays the reference the
tests hold the index equal to; a restart rebuilds from it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from latentspace.index.locks import KeyedLocks
from latentspace.live.commit import Commit
from latentspace.store import oplog, reads
from latentspace.store.payload import PayloadIndex
from latentspace.store.tables import CollectionRow

__all__ = ["PayloadIndexes"]


@dataclass
class _Live:
    index: PayloadIndex
    applied_seq: int


class PayloadIndexes:
    """Per-collection payload indexes (a view of :class:`~latentspace.live.LiveState`).

    Args:
        sessions: the SQL session factory metadata and the oplog are read from.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._live: dict[int, _Live] = {}
        self._locks = KeyedLocks()
        self._lock = threading.Lock()

    def matching(
        self, collection: CollectionRow, spec: dict[str, Any], *, seconds: float | None = None
    ) -> np.ndarray:
        """The sorted ids of the collection's live items that satisfy the (validated)
        filter, with every committed write applied.

        Raises:
            QueryTimeout: evaluating took longer than ``seconds``.
        """
        with self._locks.of(collection.id):
            return self._current(collection).evaluate(spec, seconds=seconds)

    def _current(self, collection: CollectionRow) -> PayloadIndex:
        # Caller holds the collection's lock.
        with self._sessions() as session:
            live = self._live.get(collection.id)
            if live is None:
                # The sequence is read before the rows: a write committed in between is in
                # both, and applying it again is idempotent.
                seq = oplog.last_seq(session=session, collection=collection)
                index = PayloadIndex()
                index.upsert(reads.live_metadata(session=session, collection=collection))
                with self._lock:
                    self._live[collection.id] = _Live(index, seq)
                return index
            tail = oplog.after(session=session, collection=collection, seq=live.applied_seq)
            if tail:
                touched = sorted({item_id for _, _, item_id in tail})
                found = reads.metadata_of(session=session, item_ids=touched)
                live.index.remove(i for i in touched if i not in found)
                live.index.upsert(found.items())
                live.applied_seq = tail[-1][0]
            return live.index

    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Nothing to do now: the next filter replays the oplog (see the module)."""
        del collection, commit

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        """Drop a collection's index (it has no files)."""
        del files
        with self._lock:
            self._live.pop(collection.id, None)
        self._locks.forget(collection.id)

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """Nothing to do: a migration changes no metadata."""
        del collection, files
