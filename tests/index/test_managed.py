"""Growth into a better kind and tombstone compaction, in the background, swapped atomically."""

from __future__ import annotations

import threading

import numpy as np

from latentspace.index import FaissIndex, IndexSpec, ManagedIndex, plan_index
from latentspace.index.spec import EXACT_LIMIT, estimate_bytes


def test_auto_planner_follows_size_and_budget() -> None:
    assert plan_index(1_000, 512).kind == "flat"
    mid = plan_index(500_000, 512)
    assert mid.kind == "hnsw"
    assert mid.params["m"] == 32
    assert "quantization" not in mid.params  # float32 below a million
    big = plan_index(2_000_000, 512)
    assert (big.kind, big.params["quantization"]) == ("hnsw", "sq8")
    asked = plan_index(2_000_000, 512, quantization="fp16")
    assert (asked.kind, asked.params["quantization"]) == ("hnsw", "fp16")
    assert estimate_bytes(big, 2_000_000, 512) < 0.5 * estimate_bytes(mid, 2_000_000, 512)
    # HNSW over sq8 needs ~1.6 GB at 2M × 512: past a 1.4 GB budget, IVF-PQ
    roomy = plan_index(2_000_000, 512, memory_budget=1_400_000_000)
    assert roomy.kind == "ivfpq"
    assert roomy.params["refine"] == "SQ8"
    assert estimate_bytes(roomy, 2_000_000, 512) <= 1_400_000_000
    tight = plan_index(2_000_000, 512, memory_budget=1 << 30)
    assert tight.params["refine"] == "none"
    assert tight.params["m"] == 256
    assert tight.params["nlist"] == 4096
    assert estimate_bytes(tight, 2_000_000, 512) <= 1 << 30
    assert plan_index(EXACT_LIMIT - 1, 64).kind == "flat"


def test_growth_rebuilds_into_hnsw_in_the_background_and_keeps_writes(
    small_data: tuple[np.ndarray, np.ndarray],
) -> None:
    ids, x = small_data
    managed = ManagedIndex(FaissIndex(IndexSpec("flat"), 32), auto=True, exact_limit=1_000)
    managed.add(ids[:900], x[:900])
    assert managed.current.kind == "flat"
    assert not managed.rebuilding
    managed.add(ids[900:1_200], x[900:1_200])  # crosses the limit: a rebuild starts
    # writes made while it runs must survive the swap
    managed.add(ids[1_200:], x[1_200:])
    managed.remove(ids[:10])
    managed.wait(60)
    assert managed.last_error is None
    assert managed.current.kind == "hnsw"
    assert managed.rebuilds == 1
    assert len(managed) == 2_990
    found = managed.search(x[10:3_000:50], 1).ids[:, 0]
    np.testing.assert_array_equal(found, ids[10:3_000:50])
    assert not np.isin(managed.search(x[:10], 5).ids, ids[:10]).any()
    assert managed.describe()["kind"] == "hnsw"


def test_searches_keep_working_during_a_rebuild(small_data: tuple[np.ndarray, np.ndarray]) -> None:
    ids, x = small_data
    searched_during_rebuild = threading.Event()

    def source() -> list[tuple[np.ndarray, np.ndarray]]:
        # The rebuild cannot finish before the searcher has searched while it ran.
        assert searched_during_rebuild.wait(60), "no search ran during the rebuild"
        return [(ids, x)]

    managed = ManagedIndex(
        FaissIndex(IndexSpec("flat"), 32), auto=True, exact_limit=500, source=source
    )
    managed.add(ids[:400], x[:400])
    failures: list[str] = []
    during = 0
    stop = threading.Event()

    def searcher() -> None:
        nonlocal during
        while not stop.is_set():
            rebuilding = managed.rebuilding
            top = managed.search(x[:5], 1).ids[:, 0]
            if not np.array_equal(top, ids[:5]):
                failures.append(str(top))
            if rebuilding and managed.current.kind == "flat":
                during += 1
                if during >= 3:
                    searched_during_rebuild.set()

    thread = threading.Thread(target=searcher)
    thread.start()
    managed.add(ids[400:], x[400:])  # crosses the limit: the rebuild starts and waits
    managed.wait(60)
    stop.set()
    thread.join()
    assert managed.last_error is None
    assert managed.current.kind == "hnsw"
    assert during >= 3
    assert not failures


def test_tombstones_past_the_ratio_trigger_compaction(
    small_data: tuple[np.ndarray, np.ndarray],
) -> None:
    ids, x = small_data
    managed = ManagedIndex(FaissIndex(IndexSpec("hnsw"), 32), compact_ratio=0.2)
    managed.add(ids, x)
    managed.remove(ids[:500])
    assert managed.rebuilds == 0
    assert managed.current.dead_ratio > 0.1
    managed.remove(ids[500:700])  # 700 / 3000 > 0.2
    managed.wait(60)
    assert managed.rebuilds == 1
    assert managed.current.dead_ratio == 0.0
    assert len(managed) == 2_300
    assert managed.current.spec.params["m"] == 32


def test_rebuild_from_a_source_for_lossy_kinds(small_data: tuple[np.ndarray, np.ndarray]) -> None:
    ids, x = small_data
    params = {"nlist": 16, "nprobe": 16}
    managed = ManagedIndex(
        FaissIndex(IndexSpec("ivfpq", "cosine", params), 32), source=lambda: [(ids, x)]
    )
    managed.add(ids, x)
    managed.rebuild()
    assert managed.rebuilds == 1
    assert len(managed) == 3_000
    assert managed.search(x[:20], 1).ids[:, 0].tolist() == ids[:20].tolist()


def test_a_failed_rebuild_leaves_the_old_index_serving(
    small_data: tuple[np.ndarray, np.ndarray],
) -> None:
    ids, x = small_data

    def broken() -> list[tuple[np.ndarray, np.ndarray]]:
        raise OSError("disk on fire")

    managed = ManagedIndex(FaissIndex(IndexSpec("flat"), 32), source=broken)
    managed.add(ids[:100], x[:100])
    managed.rebuild()
    assert isinstance(managed.last_error, OSError)
    assert managed.current.kind == "flat"
    assert len(managed) == 100
    managed.add(ids[100:200], x[100:200])
    assert len(managed) == 200


def test_compaction_rebuilds_with_the_parameters_of_a_fresh_plan(
    small_data: tuple[np.ndarray, np.ndarray],
) -> None:
    ids, x = small_data
    requested = IndexSpec("ivfpq")

    def source() -> list[tuple[np.ndarray, np.ndarray]]:  # what SQL holds after the removal
        return [(ids[1_000:], x[1_000:])]

    managed = ManagedIndex(FaissIndex(requested, 32), requested=requested, source=source)
    managed.add(ids[:300], x[:300])  # trained small: nlist fits 300 vectors
    small_nlist = managed.current.spec.params["nlist"]
    managed.add(ids[300:], x[300:])
    managed.remove(ids[:1_000])  # past the tombstone ratio: compaction
    managed.wait(60)
    assert managed.rebuilds >= 1
    fresh = requested.with_defaults(len(managed), 32).params["nlist"]
    assert managed.current.spec.params["nlist"] == fresh
    assert fresh > small_nlist
