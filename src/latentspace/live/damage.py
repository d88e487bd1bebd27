"""Damage found in stored data, per collection: what it is, what it touches, how to repair it.

Stored data can be damaged behind the service's back: a flipped byte in a SQL row, a value
of the wrong type written by hand, a file swapped or cut short. Whatever reads such a value
contains it to the item or collection it belongs to (the item shows no metadata, the
collection falls back to default keyword settings, the map must be fitted again), records
it here, and goes on serving the rest. ``/readyz`` names every entry, and an entry goes
when the write that repairs it commits, or with its collection.
"""

from __future__ import annotations

import logging
import threading

from latentspace.live.commit import Commit
from latentspace.store.tables import CollectionRow

__all__ = ["DamageLog"]

logger = logging.getLogger(__name__)

# entries kept per collection: past it, one line says how many more there were
_PER_COLLECTION = 100


class DamageLog:
    """Damage per collection, keyed by what it touches (``"item 17"``, ``"map"``)."""

    def __init__(self) -> None:
        self._found: dict[int, dict[str, str]] = {}
        self._names: dict[int, str] = {}
        self._more: dict[int, int] = {}
        self._lock = threading.Lock()

    def record(self, collection: CollectionRow, what: str, detail: str) -> None:
        """Note damage to ``what`` of ``collection`` (logged once per entry)."""
        with self._lock:
            found = self._found.setdefault(collection.id, {})
            self._names[collection.id] = collection.name
            if what in found:
                return
            if len(found) >= _PER_COLLECTION:
                self._more[collection.id] = self._more.get(collection.id, 0) + 1
                return
            found[what] = detail
        logger.error("collection %s: %s: %s", collection.name, what, detail)

    def repaired(self, collection: CollectionRow, what: str) -> None:
        """``what`` of ``collection`` is whole again (and each part of it: ``"item 17"``
        takes ``"item 17 phash"`` with it)."""
        with self._lock:
            found = self._found.get(collection.id)
            if found is None:
                return
            for key in [k for k in found if k == what or k.startswith(what + " ")]:
                del found[key]
            if not found:
                self._drop(collection.id)

    def report(self) -> dict[str, list[str]]:
        """Every entry, by collection name: ``"what: detail"``."""
        with self._lock:
            out = {}
            for cid, found in self._found.items():
                lines = [f"{what}: {detail}" for what, detail in sorted(found.items())]
                if self._more.get(cid):
                    lines.append(f"and {self._more[cid]} more damaged values (see the log)")
                out[self._names[cid]] = lines
            return out

    def _drop(self, cid: int) -> None:
        self._found.pop(cid, None)
        self._names.pop(cid, None)
        self._more.pop(cid, None)

    # -- the View protocol: a rewritten item is repaired; a gone collection takes its damage

    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        written = [row.id for row in commit.rows] + [*commit.deletes, *commit.stale]
        if not written or collection.id not in self._found:
            return
        for item_id in written:
            self.repaired(collection, item_key(item_id))

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        del files
        with self._lock:
            self._drop(collection.id)

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        del collection, files


def item_key(item_id: int) -> str:
    """The key damage to one item's stored fields is recorded under."""
    return f"item {item_id}"
