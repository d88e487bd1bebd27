"""The :class:`VectorIndex` protocol, search parameters and results.

Ids are int64 and owned by the caller (the SQL store's primary keys). Scores are "higher is
better" for every metric: the inner product for ``cosine``/``ip`` and the negated squared
distance for ``l2``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypedDict, Unpack, runtime_checkable

import numpy as np

from latentspace.errors import InvalidInput
from latentspace.types import Metric

__all__ = [
    "SearchOptions",
    "SearchParams",
    "SearchResult",
    "VectorIndex",
    "check_ids",
    "finish_search",
]


@dataclass(frozen=True)
class SearchParams:
    """Per-query knobs; ``None`` keeps the index's default. Never mutates a shared index."""

    nprobe: int | None = None
    ef_search: int | None = None
    rescore: int | None = None  # quantized indexes: candidates rescored per wanted hit


@dataclass(frozen=True)
class SearchResult:
    """``ids`` (nq, k) int64 padded with -1; ``scores`` (nq, k) float32, best first."""

    ids: np.ndarray
    scores: np.ndarray

    def hits(self, row: int = 0) -> list[tuple[int, float]]:
        """The (id, score) pairs of query ``row``, without padding."""
        keep = self.ids[row] >= 0
        return list(zip(self.ids[row][keep].tolist(), self.scores[row][keep].tolist(), strict=True))


Predicate = Callable[[np.ndarray], np.ndarray]


class SearchOptions(TypedDict, total=False):
    """What a search may ask besides its queries and ``k``; every key may be left out.

    ``params`` tunes the index for this query; ``allow`` restricts results to those ids (an
    id selector inside the index); ``predicate`` is a post-filter (ids → bool mask) applied
    with oversampling; ``min_score`` drops worse hits; ``offset`` skips the best ones.
    """

    params: SearchParams | None
    allow: np.ndarray | None
    predicate: Predicate | None
    min_score: float | None
    offset: int


@runtime_checkable
class VectorIndex(Protocol):
    """A nearest-neighbour index over (id, vector) pairs."""

    @property
    def kind(self) -> str:
        """``exact``, ``flat``, ``hnsw``, ``ivf``, ``ivfpq`` or a factory string."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def metric(self) -> Metric: ...

    def __len__(self) -> int:
        """Number of live vectors."""
        ...

    def __contains__(self, item_id: object) -> bool: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace (upsert) the vectors of ``ids``."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids``; returns how many were present."""
        ...

    def search(self, queries: np.ndarray, k: int, **options: Unpack[SearchOptions]) -> SearchResult:
        """The ``k`` best live ids for each query (see :class:`SearchOptions`)."""
        ...

    def save(self, directory: Path, *, fingerprint: str = "", oplog_seq: int = 0) -> None:
        """Write the index files into ``directory`` atomically, with a manifest."""
        ...


def check_ids(ids: object, *, count: int | None = None) -> np.ndarray:
    """A 1-D int64 array of non-negative, distinct ids (``count`` long if given).

    Raises:
        InvalidInput: negative, repeated, or the wrong number of ids.
    """
    array = np.asarray(ids, dtype=np.int64).reshape(-1)
    if count is not None and array.shape[0] != count:
        raise InvalidInput(f"got {array.shape[0]} ids for {count} vectors")
    if (array < 0).any():
        raise InvalidInput("ids must be non-negative")
    if np.unique(array).shape[0] != array.shape[0]:
        raise InvalidInput("ids must be distinct within one call")
    return array


RawSearch = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def finish_search(
    raw: RawSearch,
    queries: np.ndarray,
    k: int,
    *,
    total: int,
    predicate: Predicate | None = None,
    min_score: float | None = None,
    offset: int = 0,
) -> SearchResult:
    """Shared tail of every index's search: post-filter with oversampling, offset, min_score.

    ``raw(queries, n)`` returns the top ``n`` (ids, scores) with -1 padding. With a
    ``predicate`` the search asks for 4× more each round until every query has ``k + offset``
    accepted hits or the whole index was seen.
    """
    if k < 1:
        raise InvalidInput(f"k must be at least 1, got {k}")
    if offset < 0:
        raise InvalidInput(f"offset must be non-negative, got {offset}")
    want = k + offset
    nq = queries.shape[0]
    if predicate is None and total > 0:  # the common case, kept cheap for single queries
        ids, scores = raw(queries, min(total, want))
        if ids.shape[1] < want:
            pad = ((0, 0), (0, want - ids.shape[1]))
            ids = np.pad(ids, pad, constant_values=-1)
            scores = np.pad(scores, pad, constant_values=-np.inf)
        return _trim(ids, scores, offset, min_score)
    out_ids = np.full((nq, want), -1, dtype=np.int64)
    out_scores = np.full((nq, want), -np.inf, dtype=np.float32)
    if total == 0:
        return _trim(out_ids, out_scores, offset, min_score)
    fetch = min(total, want * 4)
    while predicate is not None:
        ids, scores = raw(queries, fetch)
        done = True
        for row in range(nq):
            valid = ids[row] >= 0
            keep = np.zeros_like(valid)
            keep[valid] = predicate(ids[row][valid])
            chosen_ids, chosen_scores = ids[row][keep][:want], scores[row][keep][:want]
            out_ids[row, : chosen_ids.shape[0]] = chosen_ids
            out_scores[row, : chosen_scores.shape[0]] = chosen_scores
            done &= chosen_ids.shape[0] == want
        if done or fetch >= total:
            break
        fetch = min(total, fetch * 4)
    return _trim(out_ids, out_scores, offset, min_score)


def _trim(
    ids: np.ndarray, scores: np.ndarray, offset: int, min_score: float | None
) -> SearchResult:
    # ``ids`` and ``scores`` are fresh arrays from a raw search: safe to edit in place.
    ids, scores = ids[:, offset:], scores[:, offset:]
    missing = ids < 0
    if min_score is not None:
        missing |= scores < min_score
    if missing.any():
        ids[missing] = -1
        scores[missing] = -np.inf
    return SearchResult(ids, scores)


def empty_answer(queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A raw answer with no hits: ids -1, scores -inf."""
    shape = (queries.shape[0], n)
    return np.full(shape, -1, np.int64), np.full(shape, -np.inf, np.float32)


def outside(excluded: np.ndarray) -> Predicate:
    """A predicate true for the ids not in ``excluded``."""
    return lambda ids: np.isin(ids, excluded, invert=True)


def both(first: Predicate | None, second: Predicate) -> Predicate:
    """A predicate true where ``first`` (if any) and ``second`` are."""
    if first is None:
        return second
    return lambda ids: first(ids) & second(ids)
