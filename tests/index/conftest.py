from __future__ import annotations

import numpy as np
import pytest


def clustered(n: int, dim: int, seed: int, *, centers: int = 100, latent: int = 16) -> np.ndarray:
    """Unit vectors from a mixture of Gaussians on a ``latent``-dim subspace, plus noise.

    Real embeddings have a low intrinsic dimension; isotropic 64-d noise would make every
    neighbour equidistant and measure nothing. The subspace and centres are fixed across
    seeds, so database and query draws come from the same distribution.
    """
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(123).normal(size=(latent, dim)).astype(np.float32)
    means = np.random.default_rng(456).normal(size=(centers, latent)).astype(np.float32) * 2
    z = means[rng.integers(0, centers, n)] + rng.normal(size=(n, latent)).astype(np.float32)
    x = z @ basis + 0.1 * rng.normal(size=(n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="session")
def big_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """100k × 64 database with ids, and 500 queries."""
    x = clustered(100_000, 64, seed=0)
    ids = np.arange(x.shape[0], dtype=np.int64) * 3 + 7  # ids are not positions
    return ids, x, clustered(500, 64, seed=1)


@pytest.fixture(scope="session")
def small_data() -> tuple[np.ndarray, np.ndarray]:
    x = clustered(3_000, 32, seed=2)
    return np.arange(x.shape[0], dtype=np.int64) * 10 + 1, x
