"""Adapters between two models' spaces: pure functions on vectors (no model, no I/O).

When a collection moves to a new model but some items cannot be re-encoded (their originals
are gone, or re-encoding all of them costs too much), an adapter fitted on items encoded by
both models maps the old vectors into the new space, so queries by the new model find them.

Two kinds, both fitted from pairs ``(old[i], new[i])``:

- ``procrustes``: the orthogonal map that best rotates old onto new
  (``scipy.linalg.orthogonal_procrustes``). Spaces of different dims are zero-padded to the
  larger one and the map cut back, which gives the semi-orthogonal solution. It keeps
  angles, so it cannot overfit a small sample.
- ``affine``: a ridge least-squares map ``old @ A + b`` (scikit-learn ``Ridge``), cut to
  ``rank`` (reduced-rank regression: its fitted values projected on their top principal
  directions) when one is given. It can bend more than a rotation, and needs more pairs.

:func:`fit_adapter` fits them on part of the pairs and measures each on the rest: how much
of a full re-encode's top-10 the adapted vectors find (:func:`overlap_at_k`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from latentspace.vectors import unit_rows

__all__ = [
    "ADAPTER_KINDS",
    "Adapter",
    "AdapterChoice",
    "AdapterFit",
    "AdapterKind",
    "fit_adapter",
    "fit_affine",
    "fit_procrustes",
    "overlap_at_k",
]

AdapterKind = Literal["procrustes", "affine"]
AdapterChoice = Literal["auto", "procrustes", "affine"]
ADAPTER_KINDS: tuple[AdapterKind, ...] = ("procrustes", "affine")


@dataclass(frozen=True)
class Adapter:
    """A map from one space to another: ``unit(x @ matrix + bias)``."""

    kind: AdapterKind
    matrix: np.ndarray  # (dim_in, dim_out) float32
    bias: np.ndarray  # (dim_out,) float32; zero for procrustes

    @property
    def dim_in(self) -> int:
        """Dimension of the vectors it takes."""
        return int(self.matrix.shape[0])

    @property
    def dim_out(self) -> int:
        """Dimension of the vectors it gives."""
        return int(self.matrix.shape[1])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Map rows of ``vectors`` (n, dim_in) into the other space, L2-normalised."""
        x = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim_in)
        return unit_rows(x @ self.matrix + self.bias)

    def apply_direction(self, vector: np.ndarray) -> np.ndarray:
        """Map a difference of vectors (a direction): the linear part only, norm kept."""
        v = np.asarray(vector, dtype=np.float32).reshape(self.dim_in)
        mapped = v @ self.matrix
        scale = float(np.linalg.norm(v)) / max(float(np.linalg.norm(mapped)), 1e-12)
        out: np.ndarray = (mapped * scale).astype(np.float32)
        return out


def fit_procrustes(old: np.ndarray, new: np.ndarray) -> Adapter:
    """The orthogonal (or, across dims, semi-orthogonal) map that best takes ``old`` to ``new``."""
    from scipy.linalg import orthogonal_procrustes

    x, y = unit_rows(old), unit_rows(new)
    d_in, d_out = x.shape[1], y.shape[1]
    d = max(d_in, d_out)
    xp = np.zeros((len(x), d), np.float64)
    yp = np.zeros((len(y), d), np.float64)
    xp[:, :d_in], yp[:, :d_out] = x, y
    rotation, _ = orthogonal_procrustes(xp, yp)
    matrix = np.ascontiguousarray(rotation[:d_in, :d_out], dtype=np.float32)
    return Adapter("procrustes", matrix, np.zeros(d_out, np.float32))


def fit_affine(
    old: np.ndarray, new: np.ndarray, *, alpha: float = 1.0, rank: int | None = None
) -> Adapter:
    """A ridge least-squares map ``old @ A + b ≈ new``, of rank at most ``rank``."""
    from sklearn.linear_model import Ridge

    x, y = unit_rows(old).astype(np.float64), unit_rows(new).astype(np.float64)
    model = Ridge(alpha=alpha, fit_intercept=True).fit(x, y)
    matrix = np.asarray(model.coef_, dtype=np.float64).T  # (d_in, d_out)
    bias = np.asarray(model.intercept_, dtype=np.float64).reshape(-1)
    if rank is not None and rank < min(matrix.shape):
        # Reduced-rank regression: keep the top principal directions of the fitted values.
        fitted = x @ matrix
        _, _, vt = np.linalg.svd(fitted - fitted.mean(axis=0), full_matrices=False)
        keep = vt[:rank].T @ vt[:rank]
        matrix = matrix @ keep
    return Adapter("affine", np.ascontiguousarray(matrix, np.float32), np.asarray(bias, np.float32))


def overlap_at_k(queries: np.ndarray, truth: np.ndarray, test: np.ndarray, k: int = 10) -> float:
    """Mean share of each query's top-``k`` in ``truth`` that its top-``k`` in ``test`` holds.

    Row ``i`` of ``truth`` and ``test`` is the same item in two versions (a full re-encode,
    an adapted old vector); query ``i`` is item ``i``'s own new vector, so item ``i`` is left
    out of both rankings (it would be first in both).
    """
    q, a, b = unit_rows(queries), unit_rows(truth), unit_rows(test)
    n = len(q)
    k = min(k, n - 1)
    if k < 1:
        raise ValueError("overlap_at_k needs at least two items")
    sa, sb = q @ a.T, q @ b.T
    np.fill_diagonal(sa, -np.inf)
    np.fill_diagonal(sb, -np.inf)
    top_a = np.argpartition(-sa, k - 1, axis=1)[:, :k]
    top_b = np.argpartition(-sb, k - 1, axis=1)[:, :k]
    hits = [len(set(ra.tolist()) & set(rb.tolist())) for ra, rb in zip(top_a, top_b, strict=True)]
    return float(np.mean(hits)) / k


@dataclass(frozen=True)
class AdapterFit:
    """The adapter chosen, refitted on every pair, and what it scored on held-out pairs
    when fitted without them (``scores``: each kind tried)."""

    adapter: Adapter
    recall_at_10: float
    scores: dict[str, float]
    fitted_on: int
    held_out: int


def fit_adapter(
    old: np.ndarray,
    new: np.ndarray,
    *,
    kind: AdapterChoice = "auto",
    holdout: float = 0.25,
    seed: int = 0,
    rank: int | None = None,
) -> AdapterFit:
    """Fit an adapter old → new on pairs of rows, measured on held-out pairs.

    A ``holdout`` share of the pairs is left out, each kind is fitted on the rest and
    scored by :func:`overlap_at_k` on the held-out ones (the adapted old vectors against
    their re-encodes, queried by the re-encodes); ``auto`` keeps the better kind. The kept
    kind is then refitted on all pairs.

    Raises:
        ValueError: fewer than 24 pairs, or rows that do not pair up.
    """
    old, new = np.asarray(old, np.float32), np.asarray(new, np.float32)
    if len(old) != len(new):
        raise ValueError(f"{len(old)} old vectors for {len(new)} new ones")
    if len(old) < 24:
        raise ValueError(
            f"an adapter needs at least 24 items encoded by both models, not {len(old)}"
        )
    order = np.random.default_rng(seed).permutation(len(old))
    cut = max(12, round(len(old) * holdout))
    held, fit = order[:cut], order[cut:]
    kinds: tuple[AdapterKind, ...] = ADAPTER_KINDS if kind == "auto" else (kind,)
    scores: dict[str, float] = {}
    for candidate in kinds:
        trial = _fit(candidate, old[fit], new[fit], rank)
        scores[candidate] = overlap_at_k(new[held], new[held], trial.apply(old[held]))
    best = max(scores, key=lambda c: scores[c])
    chosen: AdapterKind = "affine" if best == "affine" else "procrustes"
    return AdapterFit(_fit(chosen, old, new, rank), scores[best], scores, len(fit), len(held))


def _fit(kind: AdapterKind, old: np.ndarray, new: np.ndarray, rank: int | None) -> Adapter:
    return fit_procrustes(old, new) if kind == "procrustes" else fit_affine(old, new, rank=rank)
