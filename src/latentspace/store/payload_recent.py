"""The recent part of a payload index: items written since its columns were last compacted,
in dicts of sets that take a write in O(fields) (see :mod:`latentspace.store.payload`)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentspace.store.filters import MAX_DEPTH, json_kind

__all__ = ["EMPTY", "Path", "Recent", "flatten", "scalar_keys"]

EMPTY = np.empty(0, dtype=np.int64)
EMPTY.setflags(write=False)
Path = tuple[str, ...]
Key = tuple[str, Any]  # (kind, value): True and 1 are different keys, 1 and 1.0 the same
_ENTRY_BYTES = 200  # a rough size of one indexed value here (set slot, key, posting)


@dataclass
class _Field:
    """What one path holds across the recent items."""

    present: set[int] = field(default_factory=set)
    values: dict[Key, set[int]] = field(default_factory=lambda: defaultdict(set))
    elements: dict[Key, set[int]] = field(default_factory=lambda: defaultdict(set))
    entries: int = 0


def flatten(document: dict[str, Any], prefix: Path = ()) -> Iterator[tuple[Path, object]]:
    """Every (path, value) of the metadata, objects included (``$exists`` asks for them),
    down to the filter DSL's depth limit."""
    for key, value in document.items():
        path = (*prefix, str(key))
        if len(path) > MAX_DEPTH:
            continue  # no filter can name it
        yield path, value
        if isinstance(value, dict):
            yield from flatten(value, path)


def scalar_keys(value: object) -> tuple[str, list[Key]]:
    """Where a value is indexed: ``("values", [key])`` for a scalar, ``("elements", keys)``
    for the scalar elements of an array, ``("values", [])`` for an object."""
    kind = json_kind(value)
    if kind == "array":
        keys = [(json_kind(e), e) for e in value]  # type: ignore[attr-defined]
        return "elements", [k for k in keys if k[0] not in ("array", "object")]
    return "values", [] if kind == "object" else [(kind, value)]


class Recent:
    """Recently written items' metadata, by path, for the positive operators."""

    def __init__(self) -> None:
        self._fields: dict[Path, _Field] = {}
        self._docs: dict[int, list[tuple[Path, object]]] = {}
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._docs

    def paths(self) -> Iterable[Path]:
        """The paths some recent item has."""
        return self._fields.keys()

    def doc_ids(self) -> Iterable[int]:
        """The recent items' ids."""
        return self._docs.keys()

    def documents(self) -> Iterable[tuple[int, list[tuple[Path, object]]]]:
        """Each recent item's flattened metadata (for compaction)."""
        return self._docs.items()

    def memory(self) -> dict[Path, int]:
        """Estimated bytes per path."""
        return {path: f.entries * _ENTRY_BYTES for path, f in self._fields.items()}

    def upsert(self, item_id: int, entries: list[tuple[Path, object]]) -> None:
        """Index (or re-index) one item by its flattened metadata."""
        self.remove(item_id)
        self._docs[item_id] = entries
        for path, value in entries:
            field_ = self._fields.get(path)
            if field_ is None:
                field_ = self._fields[path] = _Field()
            field_.present.add(item_id)
            table, keys = scalar_keys(value)
            for key in keys:
                getattr(field_, table)[key].add(item_id)
            field_.entries += 1 + len(keys)
        self._cache.clear()

    def remove(self, item_id: int) -> None:
        """Forget one item (ignored when it is not here)."""
        for path, value in self._docs.pop(item_id, ()):
            field_ = self._fields[path]
            field_.present.discard(item_id)
            table, keys = scalar_keys(value)
            postings: dict[Key, set[int]] = getattr(field_, table)
            for key in keys:
                if key in postings:
                    postings[key].discard(item_id)
                    if not postings[key]:
                        del postings[key]
            field_.entries -= 1 + len(keys)
            if not field_.present:
                del self._fields[path]
        self._cache.clear()

    def clear(self) -> None:
        """Forget every item (they were compacted into columns)."""
        self.__init__()  # type: ignore[misc]

    # -- evaluation ------------------------------------------------------------------------
    def leaf(self, path: Path, op: str, target: Any) -> np.ndarray:
        """Sorted ids of recent items matching one positive operator (``$exists: true``,
        ``$eq``, ``$in``, ``$contains``, or a range) on ``path``."""
        field_ = self._fields.get(path)
        if field_ is None:
            return EMPTY
        if op == "$exists":
            return self._posting(field_.present)
        if op in ("$eq", "$in"):
            keys = {(json_kind(t), t) for t in (target if op == "$in" else [target])}
            return self._union(field_.values[k] for k in keys if k in field_.values)
        if op == "$contains":
            key = (json_kind(target), target)
            found = [field_.elements[key]] if key in field_.elements else []
            if isinstance(target, str):
                strings = ((v, ids) for (k, v), ids in field_.values.items() if k == "string")
                found += [ids for v, ids in strings if target in v]
            return self._union(found)
        kind = json_kind(target)
        chosen = sorted(v for k, v in field_.values if k == kind)
        if op in ("$gt", "$gte"):
            lo = (bisect.bisect_right if op == "$gt" else bisect.bisect_left)(chosen, target)
            chosen = chosen[lo:]
        else:
            hi = (bisect.bisect_left if op == "$lt" else bisect.bisect_right)(chosen, target)
            chosen = chosen[:hi]
        return self._union(field_.values[(kind, v)] for v in chosen)

    def _posting(self, ids: set[int]) -> np.ndarray:
        # Keyed by the set's identity: every set asked for is held here, and any write
        # clears the cache, so an identity is never reused while it is cached.
        cached = self._cache.get(id(ids))
        if cached is None:
            cached = np.fromiter(ids, dtype=np.int64, count=len(ids))
            cached.sort()
            self._cache[id(ids)] = cached
        return cached

    def _union(self, postings: Iterable[set[int]]) -> np.ndarray:
        parts = [self._posting(p) for p in postings if p]
        if not parts:
            return EMPTY
        return parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))
