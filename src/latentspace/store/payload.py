"""A payload index: the metadata filter DSL evaluated in memory, to the exact set of ids
(a view of ``live.payloads`` keeps one per collection).

Every path of an item's metadata (nested objects included, down to the DSL's depth limit)
is indexed by the kind and value found there, with the semantics of
:func:`latentspace.store.filters.matches` (the reference the SQL is tested against too):
comparisons match only values of the same JSON kind, a missing field matches only ``$ne``,
``$nin`` and ``$exists: false``, ``$contains`` is an array element or a substring.

Two parts hold the items, as in an LSM tree: :class:`~.payload_columns.Columns`, sorted
columns per path and kind (an equality or a range is a binary search and a slice, at any
number of distinct values), and :class:`~.payload_recent.Recent`, the items written since
the columns were built, in dicts of sets that take a write at once. Column rows of items
written or deleted since are *stale* and left out of answers. When the recent items and
stale rows pass a sixteenth of the columns (and 4,096), they are merged into new columns by
sorted insertion. Answers are sorted read-only ``int64`` arrays; the last 64 filters'
answers are kept until the next write (the same album or tenant filter, query after query).
Not thread-safe: its owner locks around it.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np

from latentspace.errors import QueryTimeout
from latentspace.store.payload_columns import Columns
from latentspace.store.payload_recent import EMPTY, Path, Recent, flatten

__all__ = ["PayloadIndex"]

_ANSWERS = 64  # the most recent filters' answers kept until the next write
_COMPACT_MIN = 4_096  # recent items and stale rows held before a compaction is considered


class PayloadIndex:
    """Items' metadata, indexed by every path for the filter DSL."""

    def __init__(self) -> None:
        self._columns = Columns.empty()
        self._recent = Recent()
        self._stale: set[int] = set()  # column items deleted or rewritten since
        self._stale_ids: np.ndarray | None = None
        self._all: np.ndarray | None = None
        self._answers: OrderedDict[str, np.ndarray] = OrderedDict()
        self._deadline: float | None = None
        self._seconds: float | None = None

    @classmethod
    def of(cls, items: Iterable[tuple[int, dict[str, Any]]]) -> PayloadIndex:
        """An index of ``(id, metadata)`` pairs, built as columns at once."""
        index = cls()
        index._columns = Columns.build((i, list(flatten(m or {}))) for i, m in items)
        return index

    def __len__(self) -> int:
        return int(self._columns.doc_ids.size) - len(self._stale) + len(self._recent)

    @property
    def paths(self) -> int:
        """How many distinct paths are indexed."""
        return len(set(self._columns.paths()) | set(self._recent.paths()))

    def memory(self) -> dict[str, int]:
        """Estimated bytes held per path (dotted), largest first."""
        total: dict[str, int] = {}
        for part in (self._columns.memory(), self._recent.memory()):
            for path, size in part.items():
                total[".".join(path)] = total.get(".".join(path), 0) + size
        return dict(sorted(total.items(), key=lambda kv: -kv[1]))

    def upsert(self, items: Iterable[tuple[int, dict[str, Any]]]) -> None:
        """Index (or re-index) items by id with their metadata."""
        batch = [(item_id, list(flatten(metadata or {}))) for item_id, metadata in items]
        self._mark_stale([item_id for item_id, _ in batch])
        if len(batch) + len(self._recent) + len(self._stale) > self._compact_at():
            for item_id, _ in batch:
                self._recent.remove(item_id)
            self._compact(batch)
        else:
            for item_id, entries in batch:
                self._recent.upsert(item_id, entries)
        self._changed()

    def remove(self, item_ids: Iterable[int]) -> None:
        """Forget items (ids not indexed are ignored)."""
        gone = list(item_ids)
        self._mark_stale(gone)
        for item_id in gone:
            self._recent.remove(item_id)
        self._changed()

    def ids(self) -> np.ndarray:
        """Every indexed id, sorted."""
        if self._all is None:
            held = self._without_stale(self._columns.doc_ids)
            recent = np.fromiter(self._recent.doc_ids(), np.int64, len(self._recent))
            self._all = np.union1d(held, recent) if recent.size else held
        return self._all

    def evaluate(
        self, spec: dict[str, Any], *, seconds: float | None = None, cached: bool = True
    ) -> np.ndarray:
        """The sorted ids whose metadata satisfies the (validated) filter ``spec``; with
        ``cached`` false it is evaluated afresh (benchmarks time that).

        Raises:
            QueryTimeout: evaluating took longer than ``seconds`` (None: no deadline).
        """
        key = json.dumps(spec, sort_keys=True)  # a filter asked again is answered from here
        found = self._answers.get(key) if cached else None
        if found is not None:
            self._answers.move_to_end(key)
            return found
        self._deadline = None if seconds is None else time.monotonic() + seconds
        self._seconds = seconds
        try:
            found = self._evaluate(spec)
        finally:
            self._deadline = None
        found.setflags(write=False)  # shared by every caller until the next write
        self._answers[key] = found
        if len(self._answers) > _ANSWERS:
            self._answers.popitem(last=False)
        return found

    def _evaluate(self, spec: dict[str, Any]) -> np.ndarray:
        out: np.ndarray | None = None
        for key, condition in spec.items():
            if key == "$and":
                part = self._all_of(condition)
            elif key == "$or":
                parts = [self._evaluate(sub) for sub in condition]
                part = np.unique(np.concatenate(parts)) if parts else EMPTY
            elif key == "$not":
                part = np.setdiff1d(self.ids(), self._evaluate(condition), assume_unique=True)
            else:
                ops = condition if isinstance(condition, dict) else {"$eq": condition}
                part = self._all_of_ops(tuple(key.split(".")), ops)
            out = part if out is None else np.intersect1d(out, part, assume_unique=True)
            if not out.size:
                return EMPTY
        return self.ids() if out is None else out

    # -- evaluation ------------------------------------------------------------------------
    def _all_of(self, specs: list[dict[str, Any]]) -> np.ndarray:
        out = self.ids()
        for sub in specs:
            out = np.intersect1d(out, self._evaluate(sub), assume_unique=True)
        return out

    def _all_of_ops(self, path: Path, ops: dict[str, Any]) -> np.ndarray:
        out: np.ndarray | None = None
        for op, target in ops.items():
            part = self._op(path, op, target)
            out = part if out is None else np.intersect1d(out, part, assume_unique=True)
        return EMPTY if out is None else out

    def _op(self, path: Path, op: str, target: Any) -> np.ndarray:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise QueryTimeout(
                f"the filter ran past its deadline of {self._seconds:g} s "
                "(LATENTSPACE_LIMITS__MAX_QUERY_SECONDS); narrow the filter"
            )
        if op in ("$ne", "$nin"):
            positive = self._op(path, "$eq" if op == "$ne" else "$in", target)
            return np.setdiff1d(self.ids(), positive, assume_unique=True)
        if op == "$exists" and target is False:
            present = self._op(path, "$exists", True)
            return np.setdiff1d(self.ids(), present, assume_unique=True)
        held = self._without_stale(self._columns.leaf(path, op, target))
        recent = self._recent.leaf(path, op, target)
        if not recent.size or not held.size:
            return recent if recent.size else held
        return np.union1d(held, recent)

    # -- writes ----------------------------------------------------------------------------
    def _compact_at(self) -> int:
        return max(_COMPACT_MIN, int(self._columns.doc_ids.size) // 16)

    def _mark_stale(self, item_ids: list[int]) -> None:
        doc_ids = self._columns.doc_ids
        if not doc_ids.size or not item_ids:
            return
        asked = np.asarray(item_ids, dtype=np.int64)
        self._stale.update(asked[np.isin(asked, doc_ids)].tolist())
        self._stale_ids = None

    def _without_stale(self, ids: np.ndarray) -> np.ndarray:
        if not self._stale or not ids.size:
            return ids
        if self._stale_ids is None:
            self._stale_ids = np.fromiter(self._stale, np.int64, len(self._stale))
            self._stale_ids.sort()
        return ids[~np.isin(ids, self._stale_ids, assume_unique=True)]

    def _compact(self, batch: list[tuple[int, list[tuple[Path, object]]]]) -> None:
        # Recent items and ``batch`` merged into new columns, stale rows left out.
        dropped = np.fromiter(self._stale, np.int64, len(self._stale))
        dropped.sort()
        documents = [*self._recent.documents(), *batch]
        self._columns = self._columns.merged(dropped, documents)
        self._recent.clear()
        self._stale.clear()
        self._stale_ids = None

    def _changed(self) -> None:
        self._all = None
        self._answers.clear()
