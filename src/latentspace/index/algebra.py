"""Latent algebra: pure functions on vectors (no model, no I/O).

A query is a weighted sum of signed terms, renormalised: ``normalise(Σ wᵢ·vᵢ)``. Encoder
outputs are unit vectors already; a direction (``mean(positive) − mean(negative)``) keeps its
length, so ``image + 1·direction(blue − red)`` moves exactly as far as the two colours differ.
Interpolation is spherical (slerp) because every stored vector lies on the unit sphere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from latentspace.errors import DimensionMismatch, InvalidInput
from latentspace.vectors import EPS, as_vector, normalise

__all__ = [
    "Term",
    "TermContribution",
    "centroid",
    "combine",
    "direction",
    "explain",
    "slerp",
    "slerp_path",
]


@dataclass(frozen=True)
class Term:
    """One signed, weighted vector of a query; ``label`` names it in explanations."""

    vector: np.ndarray
    weight: float = 1.0
    label: str = ""


@dataclass(frozen=True)
class TermContribution:
    """How a term shaped the final query: its weight and its cosine to the query."""

    label: str
    weight: float
    cosine: float


def _stack(vectors: Sequence[np.ndarray] | np.ndarray, name: str) -> np.ndarray:
    if len(vectors) == 0:
        raise InvalidInput(f"{name} needs at least one vector")
    rows = [as_vector(v, name=f"{name}[{i}]") for i, v in enumerate(vectors)]
    dims = {r.shape[0] for r in rows}
    if len(dims) > 1:
        raise DimensionMismatch(f"{name} mixes vectors of dimensions {sorted(dims)}")
    return np.stack(rows)


def combine(terms: Sequence[Term], *, dim: int | None = None) -> np.ndarray:
    """The unit query ``normalise(Σ weight·vector)``.

    Raises:
        InvalidInput: no terms, a bad vector, or terms that cancel out to zero.
        DimensionMismatch: terms of different dimensions (or not ``dim``).
    """
    if not terms:
        raise InvalidInput("a query needs at least one term")
    total: np.ndarray | None = None
    for i, term in enumerate(terms):
        if not np.isfinite(term.weight):
            raise InvalidInput(f"term {i} has a non-finite weight {term.weight}")
        v = as_vector(term.vector, dim=dim, name=f"term {i} ({term.label or 'vector'})")
        if total is not None and v.shape != total.shape:
            raise DimensionMismatch(
                f"term {i} has {v.shape[0]} dimensions; others have {total.shape[0]}"
            )
        total = term.weight * v if total is None else total + term.weight * v
    assert total is not None
    try:
        return normalise(total, name="the weighted sum of the terms")
    except InvalidInput as e:
        raise InvalidInput("the query terms cancel out (their weighted sum is zero)") from e


def centroid(vectors: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """The normalised mean of ``vectors`` (the centre of a set on the unit sphere)."""
    return normalise(_stack(vectors, "centroid").mean(axis=0), name="the centroid")


def direction(
    positive: Sequence[np.ndarray] | np.ndarray, negative: Sequence[np.ndarray] | np.ndarray
) -> np.ndarray:
    """``mean(positive) − mean(negative)``, not normalised (its length is the distance).

    Raises:
        InvalidInput: either side empty, or the two means are equal.
        DimensionMismatch: the sides differ in dimension.
    """
    pos, neg = _stack(positive, "positive"), _stack(negative, "negative")
    if pos.shape[1] != neg.shape[1]:
        raise DimensionMismatch(f"positive has {pos.shape[1]} dimensions, negative {neg.shape[1]}")
    d = np.asarray(pos.mean(axis=0) - neg.mean(axis=0), dtype=np.float32)
    if float(np.linalg.norm(d)) < EPS:
        raise InvalidInput("the direction is zero: positive and negative have the same mean")
    return d


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between the directions of ``a`` (t=0) and ``b`` (t=1)."""
    if not 0.0 <= t <= 1.0:
        raise InvalidInput(f"interpolation position {t} is outside [0, 1]")
    return np.asarray(_slerp(a, b, np.array([t], dtype=np.float64))[0], dtype=np.float32)


def slerp_path(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` unit vectors evenly spaced on the great circle from ``a`` to ``b`` (inclusive).

    Raises:
        InvalidInput: fewer than 2 steps, zero vectors, or ``a`` and ``b`` exactly opposite
            (the great circle between them is not unique).
    """
    if steps < 2:
        raise InvalidInput(f"a path needs at least 2 steps, got {steps}")
    return _slerp(a, b, np.linspace(0.0, 1.0, steps))


def _slerp(a: np.ndarray, b: np.ndarray, ts: np.ndarray) -> np.ndarray:
    u, v = normalise(a, name="from"), normalise(b, name="to")
    if u.shape != v.shape:
        raise DimensionMismatch(f"from has {u.shape[0]} dimensions, to has {v.shape[0]}")
    u64, v64 = u.astype(np.float64), v.astype(np.float64)
    theta = float(np.arccos(np.clip(np.dot(u64, v64), -1.0, 1.0)))
    if np.pi - theta < 1e-6:
        raise InvalidInput("from and to are opposite; the path between them is not unique")
    if theta < 1e-6:
        return np.asarray(np.repeat(u[None, :], len(ts), axis=0), dtype=np.float32)
    wa = np.sin((1.0 - ts) * theta) / np.sin(theta)
    wb = np.sin(ts * theta) / np.sin(theta)
    out = wa[:, None] * u64[None, :] + wb[:, None] * v64[None, :]
    return np.asarray(out / np.linalg.norm(out, axis=1, keepdims=True), dtype=np.float32)


def explain(terms: Sequence[Term], query: np.ndarray) -> list[TermContribution]:
    """Each term's weight and the cosine between its vector and the final ``query``."""
    q = normalise(query, name="query")
    out = []
    for term in terms:
        v = as_vector(term.vector, dim=q.shape[0], name=term.label or "term")
        norm = float(np.linalg.norm(v))
        cosine = float(np.dot(v, q) / norm) if norm >= EPS else 0.0
        out.append(TermContribution(term.label, float(term.weight), cosine))
    return out
