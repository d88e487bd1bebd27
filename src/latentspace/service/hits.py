"""What search results show of each item, kept in memory so a search reads no SQL for it.

A search hydrates its page of hits (external id, metadata, text, uri, document id, sha256)
from this cache; only the rows it lacks are read from SQL, in one query, and kept. Writes
through the service put the rows they committed, deletes forget theirs, so a search that
follows a write shows it. A server fills the cache with every collection's rows at start-up
(:meth:`HitCache.warm`), up to a memory budget; past it the least recently shown rows go.

A search that misses reads SQL outside the cache's lock, so a write can commit and update
the cache while that read is under way. Every change bumps the collection's generation, and
rows read under an older generation are shown but not kept: the cache never holds a row
older than one a write put there.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from latentspace.store import reads
from latentspace.store.tables import CollectionRow

__all__ = ["HitCache", "HitRow"]

# Bytes a row holds beyond its strings' characters: the object, its int id, its slot in the
# cache, the string headers and the 64-character sha256 (tracemalloc over 100k rows: 390).
_ROW_OVERHEAD = 390


@dataclass(frozen=True, slots=True)
class HitRow:
    """The fields a hit shows of one live item; the metadata as JSON text, so each hit
    decodes a fresh dict and no caller can change the cached one."""

    id: int
    external_id: str
    metadata_json: str
    text: str | None
    uri: str | None
    document_id: str | None
    sha256: str

    @classmethod
    def of(
        cls,
        item_id: int,
        external_id: str,
        metadata: dict[str, Any],
        text: str | None,
        uri: str | None,
        document_id: str | None,
        sha256: str,
    ) -> HitRow:
        """A row from its fields, the metadata a JSON object."""
        encoded = (
            json.dumps(metadata, separators=(",", ":"), ensure_ascii=False) if metadata else "{}"
        )
        return cls(item_id, external_id, encoded, text, uri, document_id, sha256)

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata, decoded afresh."""
        if self.metadata_json == "{}":
            return {}
        decoded: dict[str, Any] = json.loads(self.metadata_json)
        return decoded

    def size(self) -> int:
        """A rough count of the bytes the row holds in memory."""
        strings = (self.external_id, self.metadata_json, self.text, self.uri, self.document_id)
        return _ROW_OVERHEAD + sum(len(s) for s in strings if s is not None)


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

    def written(self, collection: CollectionRow, rows: Iterable[HitRow]) -> None:
        """Rows a write has committed (call after the commit)."""
        with self._lock:
            cached = self._of(collection)
            cached.generation += 1
            self._keep(cached, list(rows))

    def forget(self, collection: CollectionRow, item_ids: Iterable[int]) -> None:
        """Items a write has deleted or changed (call after the commit)."""
        with self._lock:
            cached = self._of(collection)
            cached.generation += 1
            for item_id in item_ids:
                row = cached.rows.pop(item_id, None)
                if row is not None:
                    self._used -= row.size()

    def drop(self, collection: CollectionRow) -> None:
        """Forget a deleted collection."""
        with self._lock:
            cached = self._collections.pop(collection.id, None)
            if cached is not None:
                self._used -= sum(row.size() for row in cached.rows.values())

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
