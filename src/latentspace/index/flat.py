"""Few-query searches: one OpenMP thread, and BLAS over a flat index's own rows.

A server runs one search per request thread, so a single query split over OpenMP threads
only waits on cores that are busy with other requests; and for a handful of queries against
a flat inner-product index, one matrix product (BLAS) beats FAISS's per-query kernel.
``bench/bench_flat.py`` measures both.
"""

from __future__ import annotations

from collections.abc import Iterator, Set
from contextlib import contextmanager
from typing import Any

import faiss
import numpy as np

from latentspace.index.codes import decoded_rows
from latentspace.index.exact import top_k

__all__ = [
    "SINGLE_THREAD_BELOW",
    "blas_top_k",
    "flat_rows",
    "gpu_available",
    "omp_threads",
    "stored_rows",
]

# Fewer queries than this run on one OpenMP thread (and flat ones through BLAS).
SINGLE_THREAD_BELOW = 64


@contextmanager
def omp_threads(queries: int) -> Iterator[None]:
    """One OpenMP thread for FAISS while fewer than :data:`SINGLE_THREAD_BELOW` queries run.

    OpenMP's thread count belongs to the calling thread, so other searches never see it.
    """
    if queries >= SINGLE_THREAD_BELOW:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def flat_rows(flat: Any, dim: int) -> np.ndarray:
    """The rows of a FAISS flat index (an HNSW's storage too) as a NumPy view, no copy."""
    total = int(flat.ntotal)
    if not total:
        return np.zeros((0, dim), np.float32)
    return np.asarray(faiss.rev_swig_ptr(flat.get_xb(), total * dim)).reshape(total, dim)


def gpu_available() -> bool:
    """True when this faiss build has GPU support and sees a GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def stored_rows(
    index: Any, kind: str, quantization: str, slots: np.ndarray, dim: int
) -> np.ndarray:
    """The rows at FAISS positions ``slots``: gathered from flat storage (an HNSW's too; no
    OpenMP fan-out, which ``reconstruct_batch`` starts above 1,000 rows), decoded from
    codes (quantized: approximate), or reconstructed (IVF kinds)."""
    if quantization != "none":
        return decoded_rows(index, quantization, slots, dim)
    if kind in ("flat", "hnsw"):
        flat = index if kind == "flat" else faiss.downcast_index(index.storage)
        return np.take(flat_rows(flat, dim), slots, axis=0)
    if not slots.size:
        return np.zeros((0, dim), np.float32)
    with omp_threads(1):
        return np.asarray(index.reconstruct_batch(slots), dtype=np.float32)


def blas_top_k(
    rows: np.ndarray, dead: Set[int], queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and inner products of each query's ``k`` best rows, as FAISS answers them:
    best first, ``dead`` positions left out, and -1 (score -inf) where fewer rows exist."""
    scores = queries @ rows.T
    if dead:
        scores[:, np.fromiter(dead, dtype=np.int64)] = -np.inf
    top, top_scores = top_k(scores, k)
    labels = np.full((queries.shape[0], k), -1, dtype=np.int64)
    best = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
    labels[:, : top.shape[1]], best[:, : top.shape[1]] = top, top_scores
    labels[~np.isfinite(best)] = -1
    return labels, best
