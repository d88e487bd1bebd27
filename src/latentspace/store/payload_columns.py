"""The compacted part of a payload index: per path and JSON kind, a column of values in
order with the item id of each (see :mod:`latentspace.store.payload`).

An equality, an ``$in`` or a range is a binary search per bound and one slice of ids, so a
filter costs the same whether a field has ten values or a million (a timestamp per item);
a column is two arrays (ids, and the values as Python objects so that large integers
compare exactly), not a set per value. Columns never change in place: a compaction
filters out the ids written since and merges the recent items in, by sorted insertion.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentspace.store.filters import json_kind
from latentspace.store.payload_recent import EMPTY, Path, scalar_keys

__all__ = ["Columns"]

_OBJECT_BYTES = {"number": 32, "boolean": 0, "null": 0}  # bools and None are shared objects


@dataclass(frozen=True)
class _Column:
    values: np.ndarray  # dtype object, in order (one JSON kind, so all comparable)
    ids: np.ndarray  # int64, aligned with values

    def bound(self, target: Any, side: str) -> int:
        return int(np.searchsorted(self.values, target, side=side))  # type: ignore[call-overload]


@dataclass
class _Path:
    present: np.ndarray = field(default_factory=lambda: EMPTY)  # sorted ids having the path
    values: dict[str, _Column] = field(default_factory=dict)  # scalars by kind
    elements: dict[str, _Column] = field(default_factory=dict)  # array elements by kind
    bytes: int | None = None  # estimated when first asked (columns never change)


def _column(values: list[Any], ids: list[int] | np.ndarray) -> _Column:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    id_array = np.asarray(ids, dtype=np.int64)
    if array.shape[0] > 1 and array[0] is not None:  # nulls need no order
        order = np.argsort(array, kind="stable")
        array, id_array = array[order], id_array[order]
    return _Column(array, id_array)


def _merged(old: _Column | None, keep: np.ndarray | None, new: _Column | None) -> _Column | None:
    # ``old`` without the rows ``keep`` drops, with ``new`` inserted in order.
    if old is not None and keep is not None:
        old = _Column(old.values[keep], old.ids[keep])
    if new is None or old is None or not old.ids.size:
        return new if new is not None else (old if old is not None and old.ids.size else None)
    if old.values[0] is None:
        at = np.full(new.ids.shape[0], old.ids.shape[0])
    else:
        at = np.searchsorted(old.values, new.values)
    return _Column(np.insert(old.values, at, new.values), np.insert(old.ids, at, new.ids))


class Columns:
    """Items' metadata as sorted columns per path; built whole, never edited in place."""

    def __init__(self, doc_ids: np.ndarray, paths: dict[Path, _Path]) -> None:
        self.doc_ids = doc_ids  # sorted ids of every item held (metadata or not)
        self._paths = paths

    @classmethod
    def empty(cls) -> Columns:
        return cls(EMPTY, {})

    @classmethod
    def build(cls, documents: Iterable[tuple[int, list[tuple[Path, object]]]]) -> Columns:
        """Columns of flattened documents ``(id, [(path, value), ...])``."""
        return cls.empty().merged(EMPTY, documents)

    @staticmethod
    def _gather(
        documents: Iterable[tuple[int, list[tuple[Path, object]]]],
    ) -> tuple[list[int], dict[Path, _Path]]:
        ids: list[int] = []
        raw: dict[tuple[Path, str, str], tuple[list[Any], list[int]]] = defaultdict(
            lambda: ([], [])
        )
        present: dict[Path, list[int]] = defaultdict(list)
        for item_id, entries in documents:
            ids.append(item_id)
            for path, value in entries:
                present[path].append(item_id)
                table, keys = scalar_keys(value)
                for kind, v in keys:
                    values, owners = raw[(path, table, kind)]
                    values.append(v)
                    owners.append(item_id)
        paths: dict[Path, _Path] = {}
        for path, owners in present.items():
            paths[path] = _Path(present=np.unique(np.asarray(owners, dtype=np.int64)))
        for (path, table, kind), (values, owners) in raw.items():
            getattr(paths[path], table)[kind] = _column(values, owners)
        return ids, paths

    def merged(
        self, dropped: np.ndarray, documents: Iterable[tuple[int, list[tuple[Path, object]]]]
    ) -> Columns:
        """New columns: these without the sorted ids ``dropped``, plus ``documents``."""
        new_ids, gathered = self._gather(documents)
        doc_ids = np.setdiff1d(self.doc_ids, dropped, assume_unique=True)
        doc_ids = np.union1d(doc_ids, np.asarray(new_ids, dtype=np.int64))
        paths: dict[Path, _Path] = {}
        for path in set(self._paths) | set(gathered):
            old, new = self._paths.get(path, _Path()), gathered.get(path, _Path())
            kept = np.setdiff1d(old.present, dropped, assume_unique=True)
            present = np.union1d(kept, new.present)
            if not present.size:
                continue
            out = paths[path] = _Path(present=present)
            for table in ("values", "elements"):
                old_table, new_table = getattr(old, table), getattr(new, table)
                for kind in set(old_table) | set(new_table):
                    before = old_table.get(kind)
                    keep = None if before is None else ~np.isin(before.ids, dropped)
                    column = _merged(before, keep, new_table.get(kind))
                    if column is not None:
                        getattr(out, table)[kind] = column
        return Columns(doc_ids, paths)

    def paths(self) -> Iterable[Path]:
        return self._paths.keys()

    def memory(self) -> dict[Path, int]:
        """Estimated bytes per path."""
        for held in self._paths.values():
            if held.bytes is None:  # a string column's estimate walks every value: once
                held.bytes = _estimate(held)
        return {path: p.bytes or 0 for path, p in self._paths.items()}

    # -- evaluation ------------------------------------------------------------------------
    def leaf(self, path: Path, op: str, target: Any) -> np.ndarray:
        """Sorted ids matching one positive operator on ``path`` (see ``Recent.leaf``)."""
        held = self._paths.get(path)
        if held is None:
            return EMPTY
        if op == "$exists":
            return held.present
        if op in ("$eq", "$in"):
            targets = target if op == "$in" else [target]
            return _union(_equal(held.values.get(json_kind(t)), t) for t in targets)
        if op == "$contains":
            parts = [_equal(held.elements.get(json_kind(target)), target)]
            strings = held.values.get("string")
            if isinstance(target, str) and strings is not None:
                hits = np.fromiter((target in s for s in strings.values), bool, strings.ids.size)
                parts.append(strings.ids[hits])
            return _union(parts)
        column = held.values.get(json_kind(target))
        if column is None or json_kind(target) not in ("number", "string"):
            return EMPTY
        if op in ("$gt", "$gte"):
            return _sorted(column.ids[column.bound(target, "right" if op == "$gt" else "left") :])
        return _sorted(column.ids[: column.bound(target, "left" if op == "$lt" else "right")])


def _equal(column: _Column | None, target: Any) -> np.ndarray:
    if column is None:
        return EMPTY
    if target is None:
        return column.ids
    return column.ids[column.bound(target, "left") : column.bound(target, "right")]


def _sorted(ids: np.ndarray) -> np.ndarray:
    return np.unique(ids)


def _union(parts: Iterable[np.ndarray]) -> np.ndarray:
    chosen = [p for p in parts if p.size]
    if not chosen:
        return EMPTY
    return np.unique(np.concatenate(chosen))


def _estimate(path: _Path) -> int:
    total = path.present.nbytes
    for table in (path.values, path.elements):
        for kind, column in table.items():
            total += column.ids.nbytes + column.values.nbytes
            if kind == "string":
                total += sum(49 + len(s) for s in column.values)
            else:
                total += _OBJECT_BYTES.get(kind, 32) * column.ids.size
    return total
