"""The NumPy exact index: the reference every FAISS kind is tested against."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Unpack

import numpy as np

from latentspace.atomic import atomic_write
from latentspace.index.base import (
    Predicate,
    SearchOptions,
    SearchResult,
    check_ids,
    finish_search,
)
from latentspace.index.codes import RowSource, rescore
from latentspace.types import Metric, as_metric
from latentspace.vectors import prepare_rows

__all__ = ["ExactIndex", "exact_knn", "search_exactly", "top_k"]


def exact_knn(
    database: np.ndarray, queries: np.ndarray, k: int, metric: Metric = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and scores (higher is better) of the ``k`` nearest rows of ``database``."""
    if metric == "l2":
        scores = -(
            (queries**2).sum(1)[:, None] - 2 * queries @ database.T + (database**2).sum(1)[None, :]
        )
    else:
        scores = queries @ database.T
    return top_k(scores, k)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and values of each row's ``k`` highest ``scores`` (at most its length),
    best first."""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k else np.zeros((len(scores), 0), int)
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)


def search_exactly(
    ids: np.ndarray,
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: Metric,
    *,
    predicate: Predicate | None = None,
    min_score: float | None = None,
    offset: int = 0,
    rescoring: tuple[int, RowSource] | None = None,
) -> SearchResult:
    """Brute-force search over ``(ids, vectors)`` with the shared post-processing.

    ``rescoring``: the vectors are decoded codes; (f, rows) fetches f candidates per wanted
    hit and orders them by exact score against their float32 ``rows`` (:func:`.codes.rescore`).
    """

    def raw(qs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        fetch = n if rescoring is None else n * rescoring[0]
        positions, scores = exact_knn(vectors, qs, fetch, metric)
        if rescoring is not None:
            return rescore(ids[positions], qs, rescoring[1], n, metric)
        return ids[positions], scores.astype(np.float32)

    return finish_search(
        raw, queries, k, total=ids.size, predicate=predicate, min_score=min_score, offset=offset
    )


class ExactIndex:
    """Brute-force search over an in-memory matrix; simple enough to be obviously right."""

    def __init__(self, dim: int, metric: Metric = "cosine") -> None:
        self._dim, self._metric = dim, metric
        self._vectors: dict[int, np.ndarray] = {}

    @property
    def kind(self) -> str:
        return "exact"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> Metric:
        return self._metric

    def __len__(self) -> int:
        return len(self._vectors)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._vectors

    def _prepare(self, vectors: np.ndarray, name: str) -> np.ndarray:
        return prepare_rows(vectors, self._dim, self._metric, name=name)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        x = self._prepare(vectors, "vectors")
        for key, row in zip(check_ids(ids, count=x.shape[0]).tolist(), x, strict=True):
            self._vectors[key] = row

    def remove(self, ids: np.ndarray) -> int:
        keys = np.asarray(ids, dtype=np.int64).reshape(-1).tolist()
        return sum(self._vectors.pop(k, None) is not None for k in keys)

    def save(self, directory: Path, *, fingerprint: str = "", oplog_seq: int = 0) -> None:
        """Write ids and vectors as ``exact.npz`` (atomically); see :meth:`load`."""
        ids = np.fromiter(self._vectors, dtype=np.int64, count=len(self._vectors))
        matrix = np.stack(list(self._vectors.values())) if ids.size else np.zeros((0, self._dim))
        buffer = io.BytesIO()
        np.savez(buffer, ids=ids, vectors=matrix.astype(np.float32), metric=self._metric)
        atomic_write(Path(directory) / "exact.npz", buffer.getvalue())

    @classmethod
    def load(cls, directory: Path) -> ExactIndex:
        """Read an index written by :meth:`save`."""
        with np.load(Path(directory) / "exact.npz", allow_pickle=False) as data:
            index = cls(int(data["vectors"].shape[1]), as_metric(str(data["metric"])))
            if data["ids"].size:
                index.add(data["ids"], data["vectors"])
        return index

    def search(self, queries: np.ndarray, k: int, **options: Unpack[SearchOptions]) -> SearchResult:
        allow = options.get("allow")
        q = self._prepare(queries, "queries")
        keys = np.fromiter(self._vectors, dtype=np.int64, count=len(self._vectors))
        if allow is not None:
            keys = keys[np.isin(keys, np.asarray(allow, dtype=np.int64))]
        matrix = (
            np.stack([self._vectors[k] for k in keys.tolist()])
            if keys.size
            else np.zeros((0, self._dim), np.float32)
        )

        return search_exactly(
            keys,
            matrix,
            q,
            k,
            self._metric,
            predicate=options.get("predicate"),
            min_score=options.get("min_score"),
            offset=options.get("offset", 0),
        )
