"""A payload index: the metadata filter DSL evaluated in memory, to the exact set of ids
(a view of ``live.payloads`` keeps one per collection).

Every path of an item's metadata (nested objects included, down to the DSL's depth limit)
is indexed by the kind and value found there, with the semantics of
:func:`latentspace.store.filters.matches` (the reference the SQL is tested against too):
comparisons match only values of the same JSON kind, a missing field matches only ``$ne``,
``$nin`` and ``$exists: false``, ``$contains`` is an array element or a substring.

Per path it keeps: the ids where the path exists, postings by ``(kind, value)`` of scalars,
postings by element of arrays of scalars, and for ranges the distinct numbers and strings
in order. Answers are sorted read-only ``int64`` arrays; the last 64 filters' answers are
kept until the next write (the same album or tenant filter, query after query).
Not thread-safe: its owner locks around it.
"""

from __future__ import annotations

import bisect
import json
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentspace.errors import QueryTimeout
from latentspace.store.filters import MAX_DEPTH, json_kind

__all__ = ["PayloadIndex"]

_EMPTY = np.empty(0, dtype=np.int64)
_ANSWERS = 64  # the most recent filters' answers kept until the next write
Key = tuple[str, Any]  # (kind, value): True and 1 are different keys, 1 and 1.0 the same


def _array(ids: Iterable[int]) -> np.ndarray:
    out = np.fromiter(ids, dtype=np.int64)
    out.sort()
    return out


@dataclass
class _Field:
    """What one path holds across the collection."""

    present: set[int] = field(default_factory=set)
    values: dict[Key, set[int]] = field(default_factory=lambda: defaultdict(set))
    elements: dict[Key, set[int]] = field(default_factory=lambda: defaultdict(set))
    # distinct numbers and strings in order, for ranges (kept sorted on insert)
    numbers: list[float] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)


class PayloadIndex:
    """Items' metadata, indexed by every path for the filter DSL."""

    def __init__(self) -> None:
        self._fields: dict[tuple[str, ...], _Field] = {}
        self._docs: dict[int, list[tuple[tuple[str, ...], object]]] = {}
        self._all: np.ndarray | None = None
        self._cache: dict[int, np.ndarray] = {}
        self._answers: OrderedDict[str, np.ndarray] = OrderedDict()
        self._deadline: float | None = None
        self._seconds: float | None = None

    def __len__(self) -> int:
        return len(self._docs)

    @property
    def paths(self) -> int:
        """How many distinct paths are indexed."""
        return len(self._fields)

    def upsert(self, items: Iterable[tuple[int, dict[str, Any]]]) -> None:
        """Index (or re-index) items by id with their metadata."""
        for item_id, metadata in items:
            self._remove_one(item_id)
            entries = list(_flatten(metadata or {}, ()))
            self._docs[item_id] = entries
            for path, value in entries:
                self._add(item_id, path, value)
        self._changed()

    def remove(self, item_ids: Iterable[int]) -> None:
        """Forget items (ids not indexed are ignored)."""
        for item_id in item_ids:
            self._remove_one(item_id)
        self._changed()

    def ids(self) -> np.ndarray:
        """Every indexed id, sorted."""
        if self._all is None:
            self._all = _array(self._docs)
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
                part = np.unique(np.concatenate(parts)) if parts else _EMPTY
            elif key == "$not":
                part = np.setdiff1d(self.ids(), self._evaluate(condition), assume_unique=True)
            else:
                ops = condition if isinstance(condition, dict) else {"$eq": condition}
                field_ = self._fields.get(tuple(key.split(".")))
                part = self._all_of_ops(field_, ops)
            out = part if out is None else np.intersect1d(out, part, assume_unique=True)
            if not out.size:
                return _EMPTY
        return self.ids() if out is None else out

    # -- evaluation ------------------------------------------------------------------------
    def _all_of(self, specs: list[dict[str, Any]]) -> np.ndarray:
        out = self.ids()
        for sub in specs:
            out = np.intersect1d(out, self._evaluate(sub), assume_unique=True)
        return out

    def _all_of_ops(self, field_: _Field | None, ops: dict[str, Any]) -> np.ndarray:
        out: np.ndarray | None = None
        for op, target in ops.items():
            part = self._op(field_, op, target)
            out = part if out is None else np.intersect1d(out, part, assume_unique=True)
        return _EMPTY if out is None else out

    def _op(self, field_: _Field | None, op: str, target: Any) -> np.ndarray:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise QueryTimeout(
                f"the filter ran past its deadline of {self._seconds:g} s "
                "(LATENTSPACE_LIMITS__MAX_QUERY_SECONDS); narrow the filter"
            )
        if op in ("$ne", "$nin"):
            positive = self._op(field_, "$eq" if op == "$ne" else "$in", target)
            return np.setdiff1d(self.ids(), positive, assume_unique=True)
        if field_ is None:
            return self.ids() if op == "$exists" and target is False else _EMPTY
        if op == "$exists":
            present = self._posting(field_.present)
            return present if target else np.setdiff1d(self.ids(), present, assume_unique=True)
        if op in ("$eq", "$in"):
            keys = {(json_kind(t), t) for t in (target if op == "$in" else [target])}
            return self._union(field_.values[k] for k in keys if k in field_.values)
        if op == "$contains":
            key = (json_kind(target), target)
            found = [field_.elements[key]] if key in field_.elements else []
            if isinstance(target, str):
                found += [field_.values[("string", s)] for s in field_.strings if target in s]
            return self._union(found)
        return self._range(field_, op, target)

    def _range(self, field_: _Field, op: str, target: str | float) -> np.ndarray:
        kind = json_kind(target)
        ordered: list[Any] = field_.strings if kind == "string" else field_.numbers
        if op in ("$gt", "$gte"):
            lo = (bisect.bisect_right if op == "$gt" else bisect.bisect_left)(ordered, target)
            chosen = ordered[lo:]
        else:
            hi = (bisect.bisect_left if op == "$lt" else bisect.bisect_right)(ordered, target)
            chosen = ordered[:hi]
        return self._union(field_.values[(kind, v)] for v in chosen)

    def _posting(self, ids: set[int]) -> np.ndarray:
        # Keyed by the set's identity: every set asked for is held by the index, and any
        # write clears the cache, so an identity is never reused while it is cached.
        cached = self._cache.get(id(ids))
        if cached is None:
            cached = self._cache[id(ids)] = _array(ids)
        return cached

    def _union(self, postings: Iterable[set[int]]) -> np.ndarray:
        parts = [self._posting(p) for p in postings if p]
        if not parts:
            return _EMPTY
        return parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))

    # -- writes ----------------------------------------------------------------------------
    def _changed(self) -> None:
        self._all = None
        self._cache.clear()
        self._answers.clear()

    def _add(self, item_id: int, path: tuple[str, ...], value: object) -> None:
        field_ = self._fields.get(path)
        if field_ is None:
            field_ = self._fields[path] = _Field()
        field_.present.add(item_id)
        kind = json_kind(value)
        if kind == "array":
            for element in value:  # type: ignore[attr-defined]
                if json_kind(element) not in ("array", "object"):
                    field_.elements[(json_kind(element), element)].add(item_id)
        elif kind != "object":
            postings = field_.values[(kind, value)]
            if not postings and kind in ("number", "string"):
                ordered: list[Any] = field_.numbers if kind == "number" else field_.strings
                bisect.insort(ordered, value)
            postings.add(item_id)

    def _remove_one(self, item_id: int) -> None:
        for path, value in self._docs.pop(item_id, ()):
            field_ = self._fields[path]
            field_.present.discard(item_id)
            kind = json_kind(value)
            if kind == "array":
                for element in value:  # type: ignore[attr-defined]
                    if json_kind(element) in ("array", "object"):
                        continue
                    key = (json_kind(element), element)
                    if key in field_.elements:
                        field_.elements[key].discard(item_id)
                        if not field_.elements[key]:
                            del field_.elements[key]
            elif kind != "object":
                postings = field_.values[(kind, value)]
                postings.discard(item_id)
                if not postings:
                    del field_.values[(kind, value)]
                    if kind in ("number", "string"):
                        ordered: list[Any] = field_.numbers if kind == "number" else field_.strings
                        del ordered[bisect.bisect_left(ordered, value)]
            if not field_.present:
                del self._fields[path]


def _flatten(
    document: dict[str, Any], prefix: tuple[str, ...]
) -> Iterable[tuple[tuple[str, ...], object]]:
    # Every (path, value) of the metadata, objects included (``$exists`` asks for them).
    for key, value in document.items():
        path = (*prefix, str(key))
        if len(path) > MAX_DEPTH:
            continue  # no filter can name it
        yield path, value
        if isinstance(value, dict):
            yield from _flatten(value, path)
