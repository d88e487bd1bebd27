"""Filtered ANN search: a selective id selector widens the walk by selectivity and never
answers short; recall@10 is stated against exact filtered search."""

from __future__ import annotations

import numpy as np
import pytest
from tests.index.conftest import clustered

from latentspace.index import FaissIndex, IndexSpec, SearchParams, exact_knn
from latentspace.index import spec as spec_module
from latentspace.index.spec import MAX_FILTERED_EF, widened


def test_the_walk_widens_by_selectivity_and_keeps_what_the_caller_set() -> None:
    hnsw = IndexSpec("hnsw", "cosine", {"m": 16, "ef_construction": 80, "ef_search": 64})
    assert widened(hnsw, SearchParams(), 0.5, 10).ef_search == 64  # 40 is below the default
    assert widened(hnsw, SearchParams(), 0.1, 10).ef_search == 200
    assert widened(hnsw, SearchParams(), 0.1, 30).ef_search == 600
    assert widened(hnsw, SearchParams(), 0.001, 10).ef_search == MAX_FILTERED_EF
    assert widened(hnsw, SearchParams(ef_search=32), 0.01, 10).ef_search == 32
    assert widened(hnsw, SearchParams(), 1.0, 10) == SearchParams()
    ivf = IndexSpec("ivf", "cosine", {"nlist": 256, "nprobe": 8})
    assert widened(ivf, SearchParams(), 0.1, 10).nprobe == 80
    assert widened(ivf, SearchParams(), 0.001, 10).nprobe == 256


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_selective_filters_are_answered_in_full_with_high_recall(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An allow-list past the brute-force limit (lowered here) through the index's selector:
    # 2 % of 20k items, chosen at random, so most of the walk meets items it may not return.
    monkeypatch.setattr(spec_module, "BRUTE_FORCE_LIMIT", 100)
    x = clustered(20_000, 32, seed=5)
    ids = np.arange(1, 20_001, dtype=np.int64)
    index = FaissIndex(IndexSpec(kind), 32)
    index.add(ids, x)
    rng = np.random.default_rng(6)
    allowed = np.sort(rng.choice(ids, size=400, replace=False))
    queries = clustered(100, 32, seed=7)
    result = index.search(queries, 10, allow=allowed)
    assert ((result.ids >= 0).sum(axis=1) == 10).all()  # never short
    assert np.isin(result.ids, allowed).all()
    positions, _ = exact_knn(x[allowed - 1], queries, 10)
    truth = allowed[positions]
    recall = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(result.ids, truth, strict=True)])
    assert recall >= 0.95, recall
