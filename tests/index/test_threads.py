"""Few-query searches: FAISS on one OpenMP thread (never leaking to other threads), and the
BLAS path of flat indexes answering exactly as FAISS's own flat search does."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from latentspace.index import FaissIndex, IndexSpec
from latentspace.index.flat import SINGLE_THREAD_BELOW, blas_top_k


def _unit(n: int, seed: int, dim: int = 16) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_small_searches_use_one_thread_and_batches_all(monkeypatch: pytest.MonkeyPatch) -> None:
    if faiss.omp_get_max_threads() < 2:
        pytest.skip("one core: nothing to tell apart")
    index = FaissIndex(IndexSpec("hnsw", "cosine"), 16)  # a kind FAISS itself searches
    index.add(np.arange(500, dtype=np.int64), _unit(500, 0))
    default = faiss.omp_get_max_threads()
    seen: list[int] = []
    inner = index._cpu
    original = inner.search

    def recording(*args: object, **kwargs: object) -> object:
        seen.append(faiss.omp_get_max_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(inner, "search", recording)
    q = _unit(SINGLE_THREAD_BELOW, 1)
    one = index.search(q[:1], 5)
    batch = index.search(q, 5)
    assert seen == [1, default]
    assert faiss.omp_get_max_threads() == default  # restored for the caller
    np.testing.assert_array_equal(one.ids[0], batch.ids[0])


@pytest.mark.parametrize("k", [1, 10, 40])
def test_the_blas_path_answers_as_faiss_flat_does(k: int) -> None:
    x, q = _unit(30, 2), _unit(5, 3)
    flat = faiss.IndexFlatIP(16)
    flat.add(x)
    want_scores, want_labels = flat.search(q, k)  # k = 40 > 30 rows: FAISS pads with -1
    labels, scores = blas_top_k(x, set(), q, k)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_allclose(scores[labels >= 0], want_scores[want_labels >= 0], rtol=1e-5)
    dead = {int(want_labels[0, 0]), 7}
    labels, _ = blas_top_k(x, dead, q, k)
    assert not set(labels.ravel().tolist()) & dead


def test_flat_index_searches_agree_with_and_without_tombstones() -> None:
    index = FaissIndex(IndexSpec("flat", "cosine"), 16)
    x = _unit(300, 4)
    index.add(np.arange(300, dtype=np.int64), x)
    index.remove(np.arange(0, 300, 3, dtype=np.int64))
    q = _unit(SINGLE_THREAD_BELOW, 5)
    few, many = index.search(q[:3], 10), index.search(q, 10)  # BLAS path, FAISS's own
    np.testing.assert_array_equal(few.ids, many.ids[:3])
    np.testing.assert_allclose(few.scores, many.scores[:3], rtol=1e-5)
    assert not np.isin(few.ids, np.arange(0, 300, 3)).any()
