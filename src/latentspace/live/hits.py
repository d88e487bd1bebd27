"""What search results show of each item, kept in memory so a search reads no SQL for it.

A search hydrates its page of hits (external id, metadata, text, uri, document id, sha256)
from this cache; only the rows it lacks are read from SQL, in one query, and kept. Every
commit puts the rows it wrote and drops those it deleted or left stale
(:meth:`HitCache.committed`), so a search that follows a write shows it. A server fills the
cache with every collection's rows at start-up (:meth:`HitCache.warm`), up to a memory
budget; past it the least recently shown rows go.

A search that misses reads SQL outside the cache's lock, so a write can commit and update
the cache while that read is under way. Every change bumps the collection's generation, and
rows read under an older generation are shown but not kept: the cache never holds a row
older than one a write put there.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from latentspace.live.commit import Commit, HitRow
from latentspace.store import reads
from latentspace.store.tables import CollectionRow

__all__ = ["HitCache", "HitRow"]  # HitRow is defined in live.commit


class _Rows:
    """One collection's cached rows, least recently used first, and its generation."""

    def __init__(self) -> None:
        self.rows: OrderedDict[int, HitRow] = OrderedDict()
        self.generation = 0
        self.warmed = False


class HitCache:
    """Per-collection hit rows in memory, under one byte budget for all collections.

    Args:
        sessions: the SQL session factory misses are read from.
        budget_bytes: the most the cache holds (estimated); 0 turns it off, so every
            search reads its hits from SQL.
    """

    def __init__(self, sessions: sessionmaker[Session], *, budget_bytes: int) -> None:
        self._sessions = sessions
        self._budget = budget_bytes
        self._used = 0
        self._collections: dict[int, _Rows] = {}
        self._lock = threading.Lock()

    @property
    def used_bytes(self) -> int:
        """The estimated bytes held now."""
        return self._used

    def rows(self, collection: CollectionRow, item_ids: Sequence[int]) -> dict[int, HitRow]:
        """The live rows of ``item_ids``, by item id; ids that are not live are left out.

        Rows the cache lacks are read from SQL in one query (and kept, see the module).
        """
        found: dict[int, HitRow] = {}
        with self._lock:
            cached = self._of(collection)
            generation = cached.generation
            for item_id in item_ids:
                row = cached.rows.get(item_id)
                if row is not None:
                    cached.rows.move_to_end(item_id)
                    found[item_id] = row
        missing = [i for i in item_ids if i not in found]
        if not missing:
            return found
        with self._sessions() as session:
            rows = reads.hit_rows(session=session, item_ids=missing)
            read = [_hit_row(r) for r in rows.values()]
        found.update((row.id, row) for row in read)
        with self._lock:
            if cached.generation == generation:
                self._keep(cached, read)
        return found

    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Drop the rows of items a commit deleted or left stale; keep the rows it wrote."""
        with self._lock:
            cached = self._of(collection)
            cached.generation += 1
            for item_id in (*commit.deletes, *commit.stale):
                row = cached.rows.pop(item_id, None)
                if row is not None:
                    self._used -= row.size()
            self._keep(cached, list(commit.rows))

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        """Drop a collection's rows (it has no files)."""
        del files
        with self._lock:
            cached = self._collections.pop(collection.id, None)
            if cached is not None:
                self._used -= sum(row.size() for row in cached.rows.values())

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """Nothing to do: a migration changes no field a hit shows."""
        del collection, files

    def warm(self, collection: CollectionRow) -> int:
        """Read the collection's live rows into the cache while the budget allows (once);
        how many rows it holds then."""
        with self._lock:
            cached = self._of(collection)
            if cached.warmed or self._budget <= 0:
                return len(cached.rows)
            generation = cached.generation
        read: list[HitRow] = []
        room = self._budget - self._used
        with self._sessions() as session:
            result = reads.live_hit_rows(session=session, collection=collection)
            try:
                for r in result:
                    row = _hit_row(r)
                    room -= row.size()
                    if room < 0:
                        break
                    read.append(row)
            finally:
                result.close()
        with self._lock:
            cached.warmed = True
            if cached.generation == generation:
                # Rows a search or write kept meanwhile are at least as new: keep those.
                self._keep(cached, [row for row in read if row.id not in cached.rows])
            return len(cached.rows)

    def _of(self, collection: CollectionRow) -> _Rows:
        cached = self._collections.get(collection.id)
        if cached is None:
            cached = self._collections[collection.id] = _Rows()
        return cached

    def _keep(self, cached: _Rows, rows: list[HitRow]) -> None:
        # Caller holds the lock.
        if self._budget <= 0:
            return
        for row in rows:
            old = cached.rows.pop(row.id, None)
            if old is not None:
                self._used -= old.size()
            cached.rows[row.id] = row
            self._used += row.size()
        while self._used > self._budget and self._evict_one():
            pass

    def _evict_one(self) -> bool:
        # The least recently used row of the collection that holds the most (caller locks).
        largest = max(self._collections.values(), key=lambda c: len(c.rows), default=None)
        if largest is None or not largest.rows:
            return False
        _, row = largest.rows.popitem(last=False)
        self._used -= row.size()
        return True


def _hit_row(row: Any) -> HitRow:
    return HitRow.of(
        int(row.id),
        str(row.external_id),
        row.metadata_ or {},
        row.text,
        row.uri,
        row.document_id,
        str(row.sha256),
    )
