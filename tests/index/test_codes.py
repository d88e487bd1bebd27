"""Compact vectors: fp16, sq8 and binary codes find candidates, float32 rows rescore them."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from latentspace.errors import InvalidInput
from latentspace.index import FaissIndex, IndexSpec, ManagedIndex
from latentspace.index.exact import exact_knn
from latentspace.index.spec import SQ8_TRAINING, estimate_bytes

CODES = ["fp16", "sq8", "binary"]


@pytest.fixture(scope="module")
def clustered() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ids (sparse, so ids are not positions), unit rows in 100 clusters, and queries."""
    rng = np.random.default_rng(3)
    dim, n = 128, 6_000
    centres = rng.normal(size=(100, dim))
    x = (centres[rng.integers(0, 100, n)] + 0.6 * rng.normal(size=(n, dim))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries = x[rng.choice(n, 50, replace=False)] + 0.05 * rng.normal(size=(50, dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    return np.arange(n, dtype=np.int64) * 5 + 11, x, queries


def _source(ids: np.ndarray, x: np.ndarray):  # type: ignore[no-untyped-def]
    by_id = dict(zip(ids.tolist(), x, strict=True))
    return lambda wanted: {i: by_id[i] for i in wanted.tolist() if i in by_id}


def _coded(kind: str, quantization: str, ids: np.ndarray, x: np.ndarray) -> FaissIndex:
    index = FaissIndex(IndexSpec(kind, "cosine", {"quantization": quantization}), x.shape[1])
    index.add(ids, x)
    return index


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(a) & set(b)) for a, b in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / truth.shape[1]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("quantization", CODES)
def test_rescored_codes_answer_with_exact_scores(
    clustered: tuple[np.ndarray, np.ndarray, np.ndarray], kind: str, quantization: str
) -> None:
    ids, x, queries = clustered
    index = _coded(kind, quantization, ids, x)
    index.rows_from(_source(ids, x))
    truth = ids[exact_knn(x, queries, 10)[0]]
    result = index.search(queries, 10)
    assert _recall(result.ids, truth) >= 0.95
    # every score is the exact cosine against the float32 row, not the code's estimate
    rows = x[(result.ids - 11) // 5]
    np.testing.assert_allclose(result.scores, np.einsum("qd,qkd->qk", queries, rows), atol=1e-5)
    assert (np.diff(result.scores, axis=1) <= 1e-6).all()  # best first


@pytest.mark.parametrize("quantization", CODES)
def test_without_float_rows_the_codes_answer_alone(
    clustered: tuple[np.ndarray, np.ndarray, np.ndarray], quantization: str
) -> None:
    ids, x, queries = clustered
    index = _coded("flat", quantization, ids, x)
    truth = ids[exact_knn(x, queries, 10)[0]]
    recall = _recall(index.search(queries, 10).ids, truth)
    floor = {"fp16": 0.98, "sq8": 0.9, "binary": 0.2}[quantization]
    assert recall >= floor
    index.rows_from(_source(ids, x))
    assert _recall(index.search(queries, 10).ids, truth) >= recall  # rescoring only helps


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("quantization", CODES)
def test_codes_survive_save_and_load(
    clustered: tuple[np.ndarray, np.ndarray, np.ndarray],
    kind: str,
    quantization: str,
    tmp_path: Path,
) -> None:
    ids, x, queries = clustered
    index = _coded(kind, quantization, ids, x)
    index.remove(ids[:10])
    index.save(tmp_path)
    loaded, manifest = FaissIndex.load(tmp_path)
    assert loaded.quantization == quantization
    assert manifest.count == len(index) == len(loaded)
    for each in (index, loaded):
        each.rows_from(_source(ids, x))
    np.testing.assert_array_equal(loaded.search(queries, 10).ids, index.search(queries, 10).ids)
    assert not np.isin(loaded.search(queries, 10).ids, ids[:10]).any()


@pytest.mark.parametrize("quantization", CODES)
def test_a_selective_filter_rescores_the_allowed_rows(
    clustered: tuple[np.ndarray, np.ndarray, np.ndarray], quantization: str
) -> None:
    ids, x, queries = clustered
    index = _coded("hnsw", quantization, ids, x)
    index.rows_from(_source(ids, x))
    allow = ids[::40]  # 150 of 6,000: scored over the decoded codes, then rescored
    result = index.search(queries, 10, allow=allow)
    truth = allow[exact_knn(x[::40], queries, 10)[0]]
    assert np.isin(result.ids, allow).all()
    assert _recall(result.ids, truth) >= 0.95


def test_compact_codes_take_a_fraction_of_the_bytes(
    clustered: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    ids, x, _ = clustered
    sizes = {}
    for quantization in ["none", *CODES]:
        spec = IndexSpec("flat", "cosine", {"quantization": quantization})
        index = FaissIndex(spec, x.shape[1])
        index.add(ids, x)
        index.save(tmp_path / quantization)
        files = (tmp_path / quantization).glob("index.*")
        sizes[quantization] = sum(f.stat().st_size for f in files)
        estimate = estimate_bytes(index.spec, len(ids), x.shape[1])
        assert abs(estimate - sizes[quantization]) <= 0.2 * estimate + 8 * len(ids)
    assert sizes["fp16"] <= 0.51 * sizes["none"]
    assert sizes["sq8"] <= 0.26 * sizes["none"]
    assert sizes["binary"] <= 0.04 * sizes["none"]


@pytest.mark.parametrize(
    ("kind", "metric", "params", "message"),
    [
        ("flat", "cosine", {"quantization": "int4"}, "unknown quantization"),
        ("ivf", "cosine", {"quantization": "sq8"}, "applies to flat and hnsw"),
        ("hnsw", "l2", {"quantization": "binary"}, "signs"),
        ("hnsw", "cosine", {"quantization": "sq8", "rescore": 0}, "rescore"),
        ("hnsw", "cosine", {"quantization": "sq8", "rescore": "4"}, "rescore"),
    ],
)
def test_impossible_codes_are_refused(
    kind: str, metric: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        IndexSpec(kind, metric, params)  # type: ignore[arg-type]


def test_binary_needs_whole_bytes() -> None:
    index = FaissIndex(IndexSpec("flat", "cosine", {"quantization": "binary"}), 12)
    with pytest.raises(InvalidInput, match="divisible by 8"):
        index.add(np.arange(2), np.ones((2, 12), np.float32))


def test_sq8_learns_its_ranges_once_there_are_enough_rows(
    clustered: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    ids, x, queries = clustered
    wanted = IndexSpec("hnsw", "cosine", {"quantization": "sq8"})
    managed = ManagedIndex(
        FaissIndex(IndexSpec("flat"), x.shape[1]), requested=wanted, rows=_source(ids, x)
    )
    managed.add(ids[: SQ8_TRAINING - 1], x[: SQ8_TRAINING - 1])
    assert (managed.current.kind, managed.current.quantization) == ("flat", "none")
    managed.add(ids[SQ8_TRAINING - 1 :], x[SQ8_TRAINING - 1 :])
    managed.wait(60)
    assert (managed.current.kind, managed.current.quantization) == ("hnsw", "sq8")
    assert len(managed) == len(ids)
    truth = ids[exact_knn(x, queries, 10)[0]]
    assert _recall(managed.search(queries, 10).ids, truth) >= 0.95


def test_changing_codes_keeps_answering_throughout(
    clustered: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    ids, x, queries = clustered
    index = FaissIndex(IndexSpec("hnsw"), x.shape[1])
    index.add(ids, x)
    managed = ManagedIndex(index, requested=IndexSpec("hnsw"), rows=_source(ids, x))
    answers: list[int] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            answers.append(int((managed.search(queries[:5], 10).ids >= 0).sum()))

    searcher = threading.Thread(target=search)
    searcher.start()
    try:
        managed.request(IndexSpec("hnsw", "cosine", {"quantization": "binary"}))
        managed.wait(120)
    finally:
        stop.set()
        searcher.join()
    assert managed.current.quantization == "binary"
    assert managed.rebuilds == 1
    assert answers
    assert set(answers) == {50}  # every search answered in full, before and after
    truth = ids[exact_knn(x, queries, 10)[0]]
    assert _recall(managed.search(queries, 10).ids, truth) >= 0.95
