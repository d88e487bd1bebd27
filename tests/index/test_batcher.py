"""Micro-batching: concurrent callers get exactly what a lone search would give them."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from latentspace.index.batcher import MicroBatcher
from latentspace.index.exact import exact_knn


def test_concurrent_searches_match_sequential_and_form_batches() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2000, 16)).astype(np.float32)
    queries = rng.normal(size=(64, 16)).astype(np.float32)
    calls: list[int] = []
    gate = threading.Event()

    def search_batch(qs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append(qs.shape[0])
        gate.wait(5)  # hold the first call so the others queue up behind it
        ids, scores = exact_knn(base, qs, k, "ip")
        return ids, scores

    batcher = MicroBatcher(search_batch)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def worker(i: int) -> None:
        out[i] = batcher.search(queries[i], 3 + i % 5)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert sum(calls) == len(queries)
    assert len(calls) < len(queries)  # some calls carried several queries
    for i in range(len(queries)):
        k = 3 + i % 5
        ids, scores = exact_knn(base, queries[i : i + 1], k, "ip")
        np.testing.assert_array_equal(out[i][0], ids[0])
        np.testing.assert_allclose(out[i][1], scores[0], rtol=1e-5)


def test_errors_reach_every_waiter_and_the_batcher_recovers() -> None:
    fail = {"on": True}

    def search_batch(qs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if fail["on"]:
            raise RuntimeError("boom")
        return np.zeros((len(qs), k), np.int64), np.ones((len(qs), k), np.float32)

    batcher = MicroBatcher(search_batch)
    with pytest.raises(RuntimeError, match="boom"):
        batcher.search(np.zeros(4, np.float32), 2)
    fail["on"] = False
    ids, scores = batcher.search(np.zeros(4, np.float32), 2)
    assert ids.shape == (2,)
    assert scores.tolist() == [1.0, 1.0]
