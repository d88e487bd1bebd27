"""The perceptual hashes of each collection's live images, searchable by Hamming radius.

One :class:`~latentspace.index.hamming.HammingIndex` per collection, built from SQL the
first time the collection is asked about and then kept current by every write and delete
after its commit (:meth:`PhashIndexes.committed`). Building holds the lock through the SQL
read, so a write committed before the read is in it, and one committed after is applied to
it: nothing is missed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from latentspace.index.hamming import HammingIndex
from latentspace.live.commit import Commit
from latentspace.store import dedup
from latentspace.store.tables import CollectionRow

__all__ = ["PhashIndexes"]


class PhashIndexes:
    """Per-collection Hamming indexes of image pHashes (thread-safe)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._indexes: dict[int, HammingIndex] = {}
        self._lock = threading.Lock()

    def search(
        self, collection: CollectionRow, hashes: Sequence[int], radius: int
    ) -> list[list[tuple[int, int]]]:
        """For each hash, ``(item id, bits)`` of the live images within ``radius`` bits,
        nearest first."""
        with self._lock:
            return self._of(collection).search(hashes, radius)

    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Apply a commit's deletes and hashes; re-read the hashes of its stale items."""
        with self._lock:
            index = self._indexes.get(collection.id)
            if index is None:
                return  # not built yet: the build reads the committed rows
            pairs = list(commit.phashes)
            index.remove([*commit.deletes, *(i for i, h in pairs if h is None)])
            kept = [(i, h) for i, h in pairs if h is not None]
            index.add([i for i, _ in kept], [h for _, h in kept])
            if commit.stale:
                stale = sorted(commit.stale)
                with self._sessions() as session:
                    ids, hashes = dedup.live_phashes(
                        session=session, collection=collection, item_ids=stale
                    )
                index.remove(stale)
                index.add(ids.tolist(), hashes.tolist())

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        """Drop a collection's index (it has no files)."""
        del files
        with self._lock:
            self._indexes.pop(collection.id, None)

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """Nothing to do: a migration changes no image."""
        del collection, files

    def _of(self, collection: CollectionRow) -> HammingIndex:
        index = self._indexes.get(collection.id)
        if index is None:
            with self._sessions() as session:
                ids, hashes = dedup.live_phashes(session=session, collection=collection)
            index = HammingIndex()
            index.add(ids.tolist(), hashes.tolist())
            self._indexes[collection.id] = index
        return index
