"""Vector hygiene, in one place: shape, dimension, finiteness, direction, normalisation.

Every vector that enters latentspace (an item's, a query term's, an encoder's output, a
batch given to an index) passes through one of these functions, so the same bad input gets
the same error wherever it is sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from latentspace.errors import DimensionMismatch, InvalidInput
from latentspace.types import Metric

__all__ = [
    "EPS",
    "as_matrix",
    "as_vector",
    "checked_rows",
    "l2_normalise",
    "normalise",
    "prepare_rows",
    "require_direction",
    "unit_rows",
]

EPS = 1e-8


def as_vector(value: object, *, dim: int | None = None, name: str = "vector") -> np.ndarray:
    """A finite 1-D float32 vector (of ``dim`` values when given).

    Raises:
        InvalidInput: not a non-empty 1-D list of numbers, or has NaN/Inf (a float64 beyond
            float32's range counts as infinite).
        DimensionMismatch: its length is not ``dim``.
    """
    if isinstance(value, np.ndarray) and value.dtype == np.float32:
        array = value  # a row of a checked matrix: nothing to convert
    else:
        try:
            with np.errstate(over="ignore"):  # a float64 past float32's range becomes inf,
                array = np.asarray(value, dtype=np.float32)  # refused below
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"{name} is not a list of numbers: {e}") from e
    if array.ndim != 1 or array.size == 0:
        raise InvalidInput(
            f"{name} must be a non-empty 1-D list of numbers, got shape {array.shape}"
        )
    if dim is not None and array.shape[0] != dim:
        raise DimensionMismatch(f"{name} has {array.shape[0]} dimensions; expected {dim}")
    if not np.isfinite(array).all():
        raise InvalidInput(f"{name} contains NaN or infinite values")
    return array


def require_direction(vector: np.ndarray, *, name: str = "vector") -> np.ndarray:
    """``vector`` if it has a direction (is not numerically zero), as cosine needs.

    Raises:
        InvalidInput: the vector is zero.
    """
    if float(np.dot(vector, vector)) < EPS * EPS:  # |v| < EPS, without a square root
        raise InvalidInput(f"{name}: a zero vector has no direction")
    return vector


def checked_rows(
    values: Sequence[object], dim: int, *, direction: bool, name: Callable[[int], str]
) -> np.ndarray:
    """The ``(n, dim)`` float32 matrix of ``values``, each one checked as by :func:`as_vector`
    (and :func:`require_direction` when ``direction``), with the same errors.

    Rows that are already float32 vectors of ``dim`` are checked in a few whole-matrix
    operations; anything else, or a batch with a bad row, is checked one value at a time,
    so the error names the first bad one (``name(i)`` for the i-th).
    """
    if values and all(
        isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == (dim,) for v in values
    ):
        matrix: np.ndarray = np.stack(values)  # type: ignore[arg-type]
        with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN rows are refused below
            norms2 = np.einsum("ij,ij->i", matrix, matrix)
        good = np.isfinite(matrix).all(axis=1)
        if direction:
            good &= norms2 >= EPS * EPS
        if good.all():
            return matrix
    rows = []
    for i, value in enumerate(values):
        row = as_vector(value, dim=dim, name=name(i))
        rows.append(require_direction(row, name=name(i)) if direction else row)
    return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)


def normalise(vector: object, *, name: str = "vector") -> np.ndarray:
    """A vector scaled to unit length.

    Raises:
        InvalidInput: not a finite vector, or (numerically) zero.
    """
    v = as_vector(vector, name=name)
    norm = float(np.linalg.norm(v))
    if norm < EPS:
        raise InvalidInput(f"{name} is zero; it has no direction")
    return np.asarray(v / norm, dtype=np.float32)


def as_matrix(
    vectors: object, dim: int, *, name: str = "vectors", finite: bool = True
) -> np.ndarray:
    """A C-contiguous float32 ``(n, dim)`` matrix of finite values (a 1-D vector is one row).

    ``finite=False`` skips the scan for NaN/Inf, for callers that detect them more cheaply
    (a row's norm is not finite exactly when the row is not).

    Raises:
        InvalidInput: wrong shape or NaN/Inf.
        DimensionMismatch: second axis is not ``dim``.
    """
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{name} is not a numeric matrix: {e}") from e
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise InvalidInput(f"{name} must be a 2-D matrix, got shape {array.shape}")
    if array.shape[1] != dim:
        raise DimensionMismatch(f"{name} have {array.shape[1]} dimensions; the index has {dim}")
    if finite and not np.isfinite(array).all():
        raise InvalidInput(f"{name} contain NaN or infinite values")
    return np.ascontiguousarray(array)


def l2_normalise(vectors: np.ndarray, *, name: str = "vectors") -> np.ndarray:
    """Rows scaled to unit length, as C-contiguous float32.

    Raises:
        InvalidInput: a row is zero or not finite (it has no direction).
    """
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.sqrt(np.einsum("...i,...i->...", out, out))[..., None]
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(-1)).tolist()
        raise InvalidInput(f"{name}: rows {rows[:10]} are zero or not finite; no direction")
    return np.ascontiguousarray(out / norms, dtype=np.float32)


def prepare_rows(vectors: object, dim: int, metric: Metric, *, name: str) -> np.ndarray:
    """Rows an index may store or search with: checked, and unit length for ``cosine``.

    One pass for the norms doubles as the NaN/Inf/zero check, and a single query takes a
    scalar path: few NumPy calls matter for single queries, whose caches FAISS has just
    flushed.

    Raises:
        InvalidInput: wrong shape, NaN/Inf, or (cosine) a zero row.
        DimensionMismatch: rows are not ``dim`` long.
    """
    if metric != "cosine":
        return as_matrix(vectors, dim, name=name)
    x = as_matrix(vectors, dim, name=name, finite=False)
    if x.shape[0] == 1:
        norm2 = float(np.dot(x[0], x[0]))
        if math.isfinite(norm2) and norm2 > 0:
            return np.ascontiguousarray(x / math.sqrt(norm2), dtype=np.float32)
    squared = np.einsum("ij,ij->i", x, x)
    if not (np.isfinite(squared).all() and squared.all()):
        as_matrix(x, dim, name=name)  # raises for NaN/Inf
        return l2_normalise(x, name=name)  # raises for zero rows
    return np.ascontiguousarray(x / np.sqrt(squared)[:, None], dtype=np.float32)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32; never raises."""
    v = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    out: np.ndarray = v / np.where(norms > 0, norms, 1.0)
    return out
