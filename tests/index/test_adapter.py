"""Adapters between spaces: each kind recovers a map it can express, is measured on pairs it
was not fitted on, and ``auto`` keeps the kind that scores better there."""

from __future__ import annotations

import numpy as np
import pytest

from latentspace.index.adapter import fit_adapter, fit_affine, fit_procrustes, overlap_at_k


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    return _unit(centres[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, dim)))


def test_procrustes_recovers_a_rotation_exactly() -> None:
    old = _clustered(300, 16)
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(16, 16)))
    new = old @ rotation.astype(np.float32)
    adapter = fit_procrustes(old[:100], new[:100])
    assert np.allclose(adapter.matrix, rotation, atol=1e-4)
    assert np.allclose(adapter.apply(old[100:]), new[100:], atol=1e-4)
    assert overlap_at_k(new[100:], new[100:], adapter.apply(old[100:])) == 1.0


def test_procrustes_across_dimensions_keeps_what_a_lower_dim_space_holds() -> None:
    # new = the first 8 of 16 rotated coordinates, renormalised: a map to fewer dims
    old = _clustered(400, 16)
    rotation, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(16, 16)))
    new = _unit((old @ rotation.astype(np.float32))[:, :8])
    adapter = fit_procrustes(old[:200], new[:200])
    assert adapter.matrix.shape == (16, 8)
    assert adapter.apply(old).shape == (400, 8)
    assert overlap_at_k(new[200:], new[200:], adapter.apply(old[200:])) > 0.8


def test_affine_recovers_a_shifted_linear_map_that_procrustes_cannot() -> None:
    old = _clustered(600, 12)
    rng = np.random.default_rng(3)
    linear = rng.normal(size=(12, 12)) * np.linspace(0.2, 2.0, 12)  # far from orthogonal
    new = _unit(old @ linear.astype(np.float32) + 0.5)
    affine = fit_affine(old[:400], new[:400], alpha=1e-4)
    procrustes = fit_procrustes(old[:400], new[:400])
    held = slice(400, None)
    affine_score = overlap_at_k(new[held], new[held], affine.apply(old[held]))
    procrustes_score = overlap_at_k(new[held], new[held], procrustes.apply(old[held]))
    assert affine_score > 0.9
    assert affine_score > procrustes_score + 0.05
    fit = fit_adapter(old, new)
    assert fit.adapter.kind == "affine"
    assert set(fit.scores) == {"procrustes", "affine"}
    assert fit.recall_at_10 == fit.scores["affine"]
    assert fit.held_out + fit.fitted_on == 600


def test_a_rank_limited_affine_map_has_that_rank() -> None:
    old, new = _clustered(300, 12, seed=4), _clustered(300, 10, seed=5)
    adapter = fit_affine(old, new, rank=3)
    assert np.linalg.matrix_rank(adapter.matrix, tol=1e-4) == 3


def test_a_direction_keeps_its_length_through_an_adapter() -> None:
    old = _clustered(100, 8)
    rotation, _ = np.linalg.qr(np.random.default_rng(6).normal(size=(8, 8)))
    adapter = fit_procrustes(old, old @ rotation.astype(np.float32))
    d = old[0] - old[1]
    mapped = adapter.apply_direction(d)
    assert np.allclose(mapped, d @ rotation, atol=1e-4)
    assert np.isclose(np.linalg.norm(mapped), np.linalg.norm(d), rtol=1e-5)


def test_too_few_or_unpaired_rows_are_refused() -> None:
    x = _clustered(30, 8)
    with pytest.raises(ValueError, match="at least 24"):
        fit_adapter(x[:10], x[:10])
    with pytest.raises(ValueError, match="30 old vectors for 29"):
        fit_adapter(x, x[:29])
