"""Every index kind against exact search: at 100k × 64 for recall, small data for behaviour."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from latentspace.errors import DimensionMismatch, InvalidInput
from latentspace.index import (
    KINDS,
    ExactIndex,
    FaissIndex,
    IndexSpec,
    SearchParams,
    VectorIndex,
    estimate_recall,
    exact_knn,
    recall_at_k,
)


@pytest.fixture(scope="module", params=KINDS)
def built(
    request: pytest.FixtureRequest, big_data: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> FaissIndex:
    ids, x, _ = big_data
    index = FaissIndex(IndexSpec(request.param), 64)
    index.add(ids, x)
    return index


@pytest.fixture(scope="module")
def truth(big_data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    ids, x, queries = big_data
    positions, _ = exact_knn(x, queries, 10)
    return ids[positions]


def test_recall_at_10_against_exact(
    built: FaissIndex, big_data: tuple[np.ndarray, np.ndarray, np.ndarray], truth: np.ndarray
) -> None:
    found = built.search(big_data[2], 10).ids
    recall = recall_at_k(found, truth)
    if built.kind == "flat":
        assert recall == 1.0  # exact kinds equal exact search
    else:
        assert recall >= 0.95, f"{built.kind} {built.spec.params}: recall@10 {recall:.3f}"


def test_estimate_recall_reports_the_same_quality(
    built: FaissIndex, big_data: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    ids, x, _ = big_data
    assert estimate_recall(built, ids, x, k=10, sample=100) >= 0.95


def test_per_query_parameters_do_not_touch_the_shared_index(
    built: FaissIndex, big_data: tuple[np.ndarray, np.ndarray, np.ndarray], truth: np.ndarray
) -> None:
    queries = big_data[2]
    before = built.search(queries, 10).ids
    cheap = built.search(queries, 10, params=SearchParams(nprobe=1, ef_search=10)).ids
    after = built.search(queries, 10).ids
    np.testing.assert_array_equal(before, after)
    if built.kind in ("ivf", "ivfpq", "hnsw"):
        assert recall_at_k(cheap, truth) < recall_at_k(before, truth)


def test_filtered_search_uses_the_allow_list(
    built: FaissIndex, big_data: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    ids, x, queries = big_data
    allowed = ids[::7]
    result = built.search(queries[:20], 10, allow=allowed)
    assert np.isin(result.ids, allowed).all()
    positions, _ = exact_knn(x[::7], queries[:20], 10)
    assert recall_at_k(result.ids, allowed[positions]) >= 0.9


# -- behaviour on small data, every kind and the NumPy reference ---------------------------

BEHAVIOUR_KINDS = ["exact", *KINDS]


def make(kind: str, dim: int = 32, metric: str = "cosine") -> VectorIndex:
    if kind == "exact":
        return ExactIndex(dim, metric)  # type: ignore[arg-type]
    params = {"nlist": 16, "nprobe": 16} if kind in ("ivf", "ivfpq") else {}
    return FaissIndex(IndexSpec(kind, metric, params), dim)  # type: ignore[arg-type]


@pytest.fixture(params=BEHAVIOUR_KINDS)
def small(request: pytest.FixtureRequest, small_data: tuple[np.ndarray, np.ndarray]) -> VectorIndex:
    index = make(request.param)
    index.add(*small_data)
    return index


def test_protocol(small: VectorIndex) -> None:
    assert isinstance(small, VectorIndex)
    assert len(small) == 3_000
    assert 1 in small
    assert 2 not in small


def test_each_vector_finds_itself_first(
    small: VectorIndex, small_data: tuple[np.ndarray, np.ndarray]
) -> None:
    ids, x = small_data
    result = small.search(x[:50], 1)
    np.testing.assert_array_equal(result.ids[:, 0], ids[:50])
    assert np.allclose(result.scores[:, 0], 1.0, atol=0.05)


def test_upsert_replaces_the_vector(
    small: VectorIndex, small_data: tuple[np.ndarray, np.ndarray]
) -> None:
    ids, x = small_data
    small.add(ids[:1], x[1:2])  # id 0 now holds vector 1
    assert len(small) == 3_000
    hits = small.search(x[1:2], 2).hits()
    assert {hits[0][0], hits[1][0]} == {ids[0], ids[1]}
    assert small.search(x[0:1], 1).ids[0, 0] != ids[0]


def test_removed_ids_never_come_back(
    small: VectorIndex, small_data: tuple[np.ndarray, np.ndarray]
) -> None:
    ids, x = small_data
    assert small.remove(ids[:100]) == 100
    assert small.remove(ids[:100]) == 0
    assert len(small) == 2_900
    result = small.search(x[:100], 10)
    assert not np.isin(result.ids, ids[:100]).any()
    small.add(ids[:1], x[:1])  # and an id can be re-added after removal
    assert small.search(x[:1], 1).ids[0, 0] == ids[0]


def test_offset_and_min_score(
    small: VectorIndex, small_data: tuple[np.ndarray, np.ndarray]
) -> None:
    _, x = small_data
    full = small.search(x[:5], 20)
    paged = small.search(x[:5], 10, offset=10)
    np.testing.assert_array_equal(paged.ids, full.ids[:, 10:])
    threshold = float(np.median(full.scores))
    strict = small.search(x[:5], 20, min_score=threshold)
    kept = strict.ids >= 0
    assert (strict.scores[kept] >= threshold).all()
    assert 0 < kept.sum() < kept.size


def test_predicate_post_filter_fills_k(
    small: VectorIndex, small_data: tuple[np.ndarray, np.ndarray]
) -> None:
    _, x = small_data
    result = small.search(x[:5], 10, predicate=lambda ids: ids % 3 == 0)
    assert (result.ids >= 0).all()
    assert (result.ids % 3 == 0).all()


def test_allow_list_smaller_than_k(
    small: VectorIndex, small_data: tuple[np.ndarray, np.ndarray]
) -> None:
    ids, x = small_data
    result = small.search(x[:2], 10, allow=np.array([ids[5], ids[9], 999_999]))
    for row in range(2):  # every allowed id, best first, and nothing else
        hits = result.hits(row)
        assert {i for i, _ in hits} == {ids[5], ids[9]}
        scores = [s for _, s in hits]
        assert scores == sorted(scores, reverse=True)
    assert (result.ids[:, 2:] == -1).all()


@pytest.mark.parametrize("kind", BEHAVIOUR_KINDS)
def test_bad_input_is_refused(kind: str) -> None:
    index = make(kind, dim=4)
    with pytest.raises(DimensionMismatch, match="3 dimensions"):
        index.add(np.array([1]), np.ones((1, 3)))
    with pytest.raises(InvalidInput, match="NaN"):
        index.add(np.array([1]), np.array([[np.nan, 1, 1, 1]]))
    with pytest.raises(InvalidInput, match="zero or not finite"):
        index.add(np.array([1]), np.zeros((1, 4)))
    with pytest.raises(InvalidInput, match="distinct"):
        index.add(np.array([1, 1]), np.ones((2, 4)))
    with pytest.raises(InvalidInput, match="2 ids for 1"):
        index.add(np.array([1, 2]), np.ones((1, 4)))
    with pytest.raises(InvalidInput, match="non-negative"):
        index.add(np.array([-5]), np.ones((1, 4)))
    with pytest.raises(InvalidInput, match="k must be"):
        index.search(np.ones((1, 4)), 0)
    assert len(index) == 0


@pytest.mark.parametrize("kind", BEHAVIOUR_KINDS)
def test_empty_index_returns_padding(kind: str) -> None:
    result = make(kind, dim=4).search(np.ones((2, 4)), 3)
    assert (result.ids == -1).all()
    assert result.ids.shape == (2, 3)


@pytest.mark.parametrize("kind", ["exact", "flat", "hnsw"])
def test_l2_metric_matches_exact(kind: str, small_data: tuple[np.ndarray, np.ndarray]) -> None:
    ids, x = small_data
    scaled = x * np.linspace(0.5, 2.0, x.shape[0])[:, None].astype(np.float32)
    index = make(kind, metric="l2")
    index.add(ids, scaled)
    positions, scores = exact_knn(scaled, scaled[:20], 5, "l2")
    result = index.search(scaled[:20], 5)
    assert recall_at_k(result.ids, ids[positions]) >= 0.95
    np.testing.assert_allclose(result.scores[:, 0], scores[:, 0], atol=1e-3)


def test_hnsw_tombstones_are_counted(small_data: tuple[np.ndarray, np.ndarray]) -> None:
    index = make("hnsw")
    assert isinstance(index, FaissIndex)
    index.add(*small_data)
    index.remove(small_data[0][:300])
    assert index.dead_ratio == pytest.approx(0.1)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_concurrent_searches_and_writes(
    kind: str, small_data: tuple[np.ndarray, np.ndarray]
) -> None:
    ids, x = small_data
    index = make(kind)
    index.add(ids[:1000], x[:1000])
    errors: list[BaseException] = []

    def searcher() -> None:
        try:
            for _ in range(30):
                result = index.search(x[:8], 5)
                assert (result.ids[:, 0] >= 0).all()
        except BaseException as e:
            errors.append(e)

    def writer() -> None:
        try:
            for start in range(1000, 3000, 200):
                index.add(ids[start : start + 200], x[start : start + 200])
                index.remove(ids[start : start + 10])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=searcher) for _ in range(3)] + [
        threading.Thread(target=writer)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(index) == 3000 - 100


def test_tombstones_added_after_a_search_are_honoured(
    small: VectorIndex, small_data: tuple[np.ndarray, np.ndarray]
) -> None:
    ids, x = small_data
    small.remove(ids[:10])
    assert not np.isin(small.search(x[:20], 5).ids, ids[:10]).any()
    small.remove(ids[10:20])  # the cached selector must see these too
    assert not np.isin(small.search(x[:20], 5).ids, ids[:20]).any()
