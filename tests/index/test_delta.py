"""Deferred HNSW writes: searchable the moment ``add`` returns, linked into the graph in the
background, and the same answers as an index that linked them at once."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from tests.index.conftest import clustered

from latentspace.index import FaissIndex, IndexSpec, exact_knn
from latentspace.index import faiss_index as faiss_index_module
from latentspace.index.slots import SlotMap

SPEC = IndexSpec("hnsw", "cosine", {"m": 16, "ef_construction": 80, "ef_search": 64})


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(a) & set(t)) / t.shape[0] for a, t in zip(found, truth, strict=True)])
    )


def test_deferred_rows_are_found_before_and_after_the_merge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = clustered(6_000, 32, seed=1)
    ids = np.arange(10, 6_010, dtype=np.int64)
    index = FaissIndex(SPEC, 32)
    index.add(ids[:2_000], x[:2_000])  # a graph to merge into
    merges = threading.Event()
    monkeypatch.setattr(index._merger, "start", merges.set)  # hold the merge back
    index.add(ids[2_000:], x[2_000:], defer=True)
    assert merges.is_set()
    assert index.unmerged == 4_000
    assert len(index) == 6_000
    queries = x[::300] + 0.01  # near stored rows, most of them unmerged
    before = index.search(queries, 10)
    positions, _ = exact_knn(x, queries, 10)
    assert _recall(before.ids, ids[positions]) >= 0.95
    assert (before.ids[:, 0] == ids[positions[:, 0]]).all()  # each query's own row first
    index.merge()
    assert index.unmerged == 0
    assert index.faiss_index.ntotal == 6_000
    after = index.search(queries, 10)
    assert _recall(after.ids, ids[positions]) >= 0.95


def test_removing_and_replacing_unmerged_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    x = clustered(3_000, 16, seed=2)
    ids = np.arange(3_000, dtype=np.int64)
    index = FaissIndex(SPEC, 16)
    index.add(ids[:1_000], x[:1_000])
    monkeypatch.setattr(index._merger, "start", lambda: None)
    index.add(ids[1_000:], x[1_000:], defer=True)
    assert index.remove(ids[1_000:1_100]) == 100  # unmerged, removed before any merge
    index.add(ids[1_100:1_200], -x[1_100:1_200], defer=True)  # replaced while unmerged
    hits = index.search(x[1_000:1_200], 1).ids[:, 0]
    assert not np.isin(hits, ids[1_000:1_200]).any()  # neither the removed nor the old rows
    replaced = index.search(-x[1_100:1_200], 1).ids[:, 0]
    assert (replaced == ids[1_100:1_200]).all()
    allowed = ids[1_150:1_450]
    filtered = index.search(x[1_300:1_310], 5, allow=allowed)  # an allow-list over both parts
    assert np.isin(filtered.ids, allowed).all()
    assert (filtered.ids[:, 0] == ids[1_300:1_310]).all()
    live_ids, vectors = index.snapshot()
    assert live_ids.shape[0] == 2_900 == len(index)
    order = np.argsort(live_ids)
    expected = np.concatenate([x[:1_000], -x[1_100:1_200], x[1_200:]])
    np.testing.assert_allclose(vectors[order], expected, atol=1e-6)


def test_the_background_merge_links_everything_and_saving_waits_for_it(tmp_path: Path) -> None:
    x = clustered(5_000, 16, seed=3)
    ids = np.arange(5_000, dtype=np.int64)
    index = FaissIndex(SPEC, 16)
    index.add(ids[:500], x[:500])
    for start in range(500, 5_000, 500):  # writes and searches while the merge runs
        index.add(ids[start : start + 500], x[start : start + 500], defer=True)
        found = index.search(x[start : start + 5], 1).ids[:, 0]
        assert (found == ids[start : start + 5]).all()
    index.save(tmp_path / "idx")  # merges what is left first
    assert index.unmerged == 0
    loaded, _ = FaissIndex.load(tmp_path / "idx")
    assert len(loaded) == 5_000
    assert loaded.faiss_index.ntotal == 5_000
    assert (loaded.search(x[::500], 1).ids[:, 0] == ids[::500]).all()


def test_a_write_past_the_delta_limit_merges_before_it_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(faiss_index_module, "DELTA_LIMIT", 1_000)
    x = clustered(4_000, 16, seed=4)
    index = FaissIndex(SPEC, 16)
    index.add(np.arange(100), x[:100])
    monkeypatch.setattr(index._merger, "start", lambda: None)  # no background help
    index.add(np.arange(100, 4_000), x[100:], defer=True)
    assert index.unmerged <= 500


def test_the_slot_map_is_an_array_for_dense_ids_and_a_dict_for_sparse_ones() -> None:
    slots = SlotMap()
    slots.assign(np.array([5, 1, 3]), np.array([0, 1, 2]))
    assert slots.dense
    assert len(slots) == 3
    assert 3 in slots
    assert 4 not in slots
    assert slots.lookup(np.array([1, 2, 5, -1, 10**12])).tolist() == [1, -1, 0, -1, -1]
    assert slots.pop(np.array([1, 7])).tolist() == [1]
    assert len(slots) == 2
    slots.assign(np.array([2**40]), np.array([3]))  # far past 8 × the count: a dict now
    assert not slots.dense
    assert len(slots) == 3
    assert slots.lookup(np.array([5, 3, 2**40, 1])).tolist() == [0, 2, 3, -1]
    assert slots.pop(np.array([2**40, 5])).tolist() == [3, 0]
    assert len(slots) == 1


def test_rows_written_between_the_merge_and_the_save_are_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A write that lands after save's merge and before its snapshot is merged too, so the
    # file never holds slots its graph lacks (which a load refuses as corrupted).
    x = clustered(300, 16, seed=5)
    ids = np.arange(300, dtype=np.int64)
    index = FaissIndex(SPEC, 16)
    index.add(ids[:100], x[:100])
    monkeypatch.setattr(index._merger, "start", lambda: None)
    merge, writes = index.merge, [ids[100:200], ids[200:]]

    def merge_then_a_write(count: int | None = None) -> None:
        merge(count)
        if writes:
            batch = writes.pop(0)
            index.add(batch, x[batch], defer=True)

    monkeypatch.setattr(index, "merge", merge_then_a_write)
    index.save(tmp_path / "idx")
    loaded, _ = FaissIndex.load(tmp_path / "idx")
    assert len(loaded) == 300
    assert (loaded.search(x[250:260], 1).ids[:, 0] == ids[250:260]).all()
