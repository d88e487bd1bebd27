"""Per-collection views built from SQL and kept current by tailing the oplog.

A view (the keyword indexes, the payload indexes) is built from SQL the first time it is
needed, then brought up to date by the oplog rows committed since (by any process): the
items those rows touched are read again. The oplog is read when a commit was heard (this
process's writes, and others' once the vector index has replayed them) or
:data:`RECHECK_SECONDS` after the last read, not on every use. Nothing is stored on disk:
SQL is the source, and a restart rebuilds from it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from latentspace.index.locks import KeyedLocks
from latentspace.live.commit import Commit
from latentspace.store import oplog
from latentspace.store.tables import CollectionRow

__all__ = ["RECHECK_SECONDS", "Tailed"]

# Without a commit heard, the oplog is read again at most this often (seconds): writes the
# owner never hears of (Ray shards replay them themselves) still arrive within it.
RECHECK_SECONDS = 1.0

T = TypeVar("T")


@dataclass
class _Live(Generic[T]):
    index: T
    applied_seq: int
    checked: float = field(default_factory=time.monotonic)
    dirty: bool = False


class Tailed(Generic[T]):
    """The per-collection views of one kind; subclasses say how to build and update one.

    Args:
        sessions: the SQL session factory the rows and the oplog are read from.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._live: dict[int, _Live[T]] = {}
        self._locks = KeyedLocks()
        self._lock = threading.Lock()

    def _build(self, session: Session, collection: CollectionRow) -> T:
        """A fresh view of the collection's live items."""
        raise NotImplementedError

    def _update(self, session: Session, index: T, touched: list[int]) -> None:
        """Bring ``index`` up to date for the items ``touched`` (sorted ids) since."""
        raise NotImplementedError

    @contextmanager
    def _current(self, collection: CollectionRow) -> Iterator[T]:
        """The collection's view with every committed write applied, held under its lock."""
        with self._locks.of(collection.id):
            yield self._fresh(collection)

    def _fresh(self, collection: CollectionRow) -> T:
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
                index = self._build(session, collection)
                with self._lock:
                    self._live[collection.id] = _Live(index, seq)
                return index
            live.dirty, live.checked = False, time.monotonic()  # a commit from now sets it
            tail = oplog.after(session=session, collection=collection, seq=live.applied_seq)
            if tail:
                self._update(session, live.index, sorted({item_id for _, _, item_id in tail}))
                live.applied_seq = tail[-1][0]
            return live.index

    def _built(self, collection: CollectionRow) -> T | None:
        with self._lock:
            live = self._live.get(collection.id)
        return None if live is None else live.index

    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Mark the collection's view stale: its next use reads the oplog."""
        del commit
        with self._lock:
            live = self._live.get(collection.id)
            if live is not None:
                live.dirty = True

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        """Drop a collection's view (it has no files)."""
        del files
        with self._lock:
            self._live.pop(collection.id, None)
        self._locks.forget(collection.id)

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """Nothing to do: a migration changes vectors, not metadata or text."""
        del collection, files
