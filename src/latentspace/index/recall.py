"""Self-measured quality: how often an index finds what exact search finds."""

from __future__ import annotations

import numpy as np

from latentspace.index.base import SearchParams, VectorIndex
from latentspace.index.exact import exact_knn

__all__ = ["estimate_recall", "recall_at_k"]


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
