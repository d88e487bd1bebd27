"""The payload indexes of every collection: filters answered from memory, kept current by
tailing the SQL oplog.

A collection's :class:`~latentspace.store.payload.PayloadIndex` is built from SQL the first
time a filter needs it, then brought up to date by the oplog rows committed since (by any
process): the items those rows touched are read again, so a metadata patch, an auto-tag or
another host's write is seen by the next filter. The oplog is read when a commit was heard
(this process's writes, and others' once the index has replayed them) or a second after the
last read, not on every filter. SQL stays the reference the tests hold the index equal to;
a restart rebuilds from it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from latentspace.index.locks import KeyedLocks
from latentspace.live.commit import Commit
from latentspace.store import oplog, reads
from latentspace.store.payload import PayloadIndex
from latentspace.store.tables import CollectionRow

__all__ = ["PayloadIndexes", "PayloadStats"]


# Without a commit heard, the oplog is read again at most this often (seconds): writes the
# owner never hears of (Ray shards replay them themselves) still arrive within it.
RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class PayloadStats:
    """A payload index's items, distinct paths, and estimated bytes per path."""

    items: int
    paths: int
    memory_bytes: dict[str, int]


@dataclass
class _Live:
    index: PayloadIndex
    applied_seq: int
    checked: float = field(default_factory=time.monotonic)
    dirty: bool = False


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
        live = self._live.get(collection.id)
        fresh = time.monotonic() - live.checked < RECHECK_SECONDS if live is not None else False
        if live is not None and fresh and not live.dirty:
            return live.index
        with self._sessions() as session:
            if live is None:
                # The sequence is read before the rows: a write committed in between is in
                # both, and applying it again is idempotent.
                seq = oplog.last_seq(session=session, collection=collection)
                index = PayloadIndex.of(reads.live_metadata(session=session, collection=collection))
                with self._lock:
                    self._live[collection.id] = _Live(index, seq)
                return index
            live.dirty, live.checked = False, time.monotonic()  # a commit from now sets it
            tail = oplog.after(session=session, collection=collection, seq=live.applied_seq)
            if tail:
                touched = sorted({item_id for _, _, item_id in tail})
                found = reads.metadata_of(session=session, item_ids=touched)
                live.index.remove(i for i in touched if i not in found)
                live.index.upsert(found.items())
                live.applied_seq = tail[-1][0]
            return live.index

    def describe(self, collection: CollectionRow) -> PayloadStats | None:
        """What the collection's payload index holds, or None before it is built (a start
        builds it in the background; a filter builds it at once)."""
        with self._lock:
            live = self._live.get(collection.id)
        if live is None:
            return None
        with self._locks.of(collection.id):
            index = live.index
            return PayloadStats(len(index), index.paths, index.memory())

    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Mark the collection's index stale: the next filter reads the oplog (see the
        module)."""
        del commit
        with self._lock:
            live = self._live.get(collection.id)
            if live is not None:
                live.dirty = True

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        """Drop a collection's index (it has no files)."""
        del files
        with self._lock:
            self._live.pop(collection.id, None)
        self._locks.forget(collection.id)

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """Nothing to do: a migration changes no metadata."""
        del collection, files
