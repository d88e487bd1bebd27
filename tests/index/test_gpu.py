"""GPU paths: only where CUDA and a faiss build with GPU support are present."""

from __future__ import annotations

import numpy as np
import pytest

from latentspace.index import FaissIndex, IndexSpec, gpu_available

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_gpu_index_matches_cpu(kind: str, small_data: tuple[np.ndarray, np.ndarray]) -> None:
    if not gpu_available():
        pytest.skip("faiss has no GPU support here")
    params = {"nlist": 16, "nprobe": 16} if kind == "ivf" else {}
    cpu = FaissIndex(IndexSpec(kind, "cosine", params), 32)
    gpu = FaissIndex(IndexSpec(kind, "cosine", params), 32, use_gpu=True)
    for index in (cpu, gpu):
        index.add(*small_data)
        index.remove(small_data[0][:10])
    assert gpu.on_gpu
    queries = small_data[1][:50]
    np.testing.assert_array_equal(gpu.search(queries, 5).ids, cpu.search(queries, 5).ids)
    allowed = small_data[0][::3]
    assert np.isin(gpu.search(queries, 5, allow=allowed).ids, allowed).all()
