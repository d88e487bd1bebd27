"""Self-measured quality: how often an index finds what exact search finds."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from latentspace.index.base import SearchParams, VectorIndex
from latentspace.index.exact import exact_knn

__all__ = ["estimate_recall", "recall_at_k", "streamed_recall"]


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` that appears in the same row of ``found``.

    This is faiss' ``knn_intersection_measure``: recall@k for k = ``truth.shape[1]``.
    """
    if truth.size == 0:
        return 1.0
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def estimate_recall(
    index: VectorIndex,
    ids: np.ndarray,
    vectors: np.ndarray,
    *,
    k: int = 10,
    sample: int = 200,
    seed: int = 0,
    params: SearchParams | None = None,
) -> float:
    """recall@k of ``index`` against exact search over ``(ids, vectors)``.

    ``sample`` of the stored vectors serve as queries; the truth is brute force over all of
    them, so ``ids``/``vectors`` must be everything the index holds (from the store, or
    reconstructed from a lossless index).
    """
    n = ids.shape[0]
    if n == 0:
        return 1.0
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if index.metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    queries = x[rng.choice(n, size=min(sample, n), replace=False)]
    k = min(k, n)
    truth_positions, _ = exact_knn(x, queries, k, index.metric)
    found = index.search(queries, k, params=params).ids
    return recall_at_k(found, ids[truth_positions])


def streamed_recall(
    index: VectorIndex,
    queries: np.ndarray,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    k: int = 10,
) -> float:
    """recall@k of ``index`` for ``queries`` against exact search over ``batches`` of
    ``(ids, vectors)`` (everything the index holds), read one batch at a time: the truth
    needs the queries' running top k, never every vector at once."""
    if queries.shape[0] == 0:
        return 1.0
    q = np.ascontiguousarray(queries, dtype=np.float32)
    cosine = index.metric == "cosine"
    if cosine:
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    best_ids = np.full((q.shape[0], 0), -1, np.int64)
    best = np.full((q.shape[0], 0), -np.inf, np.float32)
    for ids, vectors in batches:
        x = np.asarray(vectors, dtype=np.float32)
        if cosine:
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
        positions, scores = exact_knn(x, q, k, index.metric)
        both = np.concatenate([best, scores.astype(np.float32)], axis=1)
        both_ids = np.concatenate([best_ids, ids[positions]], axis=1)
        order = np.argsort(-both, axis=1, kind="stable")[:, :k]
        best, best_ids = np.take_along_axis(both, order, 1), np.take_along_axis(both_ids, order, 1)
    found = index.search(q, best_ids.shape[1]).ids if best_ids.shape[1] else best_ids
    return recall_at_k(found, best_ids)
