"""Compact vectors: what FAISS stores per row for each ``quantization``, and rescoring.

A flat or HNSW index keeps float32 rows (``none``), half floats (``fp16``), one byte a
dimension (``sq8``, FAISS's scalar quantizer with per-dimension ranges trained on the data)
or one bit a dimension (``binary``: the signs, compared by Hamming distance in FAISS's
binary indexes). The codes find candidates; :func:`rescore` then scores the best
``rescore × k`` of them exactly against the float32 vectors the caller keeps elsewhere (the
SQL store), so answers carry exact cosines while the index holds a fraction of the bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, get_args

import faiss
import numpy as np

from latentspace.types import Metric
from latentspace.vectors import unit_rows

__all__ = [
    "QUANTIZATIONS",
    "RESCORE",
    "Quantization",
    "RowSource",
    "approximate_scores",
    "code_bytes",
    "decoded_rows",
    "encoded",
    "faiss_bytes",
    "rescore",
    "reserve",
]

Quantization = Literal["none", "fp16", "sq8", "binary"]
QUANTIZATIONS: tuple[Quantization, ...] = get_args(Quantization)

# Candidates fetched per wanted hit and rescored exactly, by quantization: the cheapest that
# held recall@10 at float32's in bench/bench_quantization.py (1M × 384, HNSW: fp16 1, sq8 2;
# binary is far from it there, 0.47 at 16, and at 0.99 on the 128-d clusters of the tests).
# Rescoring even 1 per hit makes the scores exact cosines. A collection or a query may set it.
RESCORE: dict[str, int] = {"none": 1, "fp16": 1, "sq8": 2, "binary": 16}

# ids → their float32 vectors, by id; ids it no longer has are left out of the mapping.
RowSource = Callable[[np.ndarray], dict[int, np.ndarray]]


def code_bytes(quantization: str, dim: int) -> int:
    """Bytes one row's code takes."""
    per = {"none": 4 * dim, "fp16": 2 * dim, "sq8": dim, "binary": math.ceil(dim / 8)}
    return per[quantization]


def encoded(quantization: str, rows: np.ndarray) -> np.ndarray:
    """What the FAISS index takes for ``rows``: the rows themselves, or their sign bits."""
    if quantization == "binary":
        return np.packbits(rows > 0, axis=1)
    return rows


def approximate_scores(quantization: str, distances: np.ndarray, dim: int) -> np.ndarray:
    """FAISS's answer as scores in the float index's convention (inner product, or squared
    distance for l2). Hamming distance h becomes cos(π h / dim): the angle between two
    vectors that disagree in h of dim signs, were the signs random hyperplanes."""
    if quantization != "binary":
        return distances
    return np.cos(np.pi * distances.astype(np.float32) / dim).astype(np.float32)


def decoded_rows(index: Any, quantization: str, slots: np.ndarray, dim: int) -> np.ndarray:
    """The rows at ``slots`` of a flat-coded index (flat, or an HNSW's storage) as floats
    decoded from their codes (binary: ±1/√dim per sign)."""
    if not slots.size:
        return np.zeros((0, dim), np.float32)
    storage = _storage(index)
    if quantization == "binary":
        size = code_bytes("binary", dim)
        codes = faiss.rev_swig_ptr(storage.xb.data(), int(storage.ntotal) * size)
        bits = np.unpackbits(np.asarray(codes).reshape(-1, size)[slots], axis=1)[:, :dim]
        return (bits.astype(np.float32) * 2 - 1) / np.float32(math.sqrt(dim))
    size = int(storage.code_size)
    codes = np.asarray(faiss.rev_swig_ptr(storage.codes.data(), int(storage.ntotal) * size))
    gathered = np.ascontiguousarray(codes.reshape(-1, size)[slots])
    return np.asarray(storage.sa_decode(gathered), dtype=np.float32)


def faiss_bytes(index: Any) -> int:
    """Resident bytes of a FAISS index: its codes (or float rows), an HNSW graph's links,
    an IVF's lists with their ids (other kinds: the codes alone)."""
    if index is None:
        return 0
    total = int(index.ntotal) * int(getattr(index, "code_size", 0))
    hnsw = getattr(index, "hnsw", None)
    if hnsw is not None:
        links = 4 * (hnsw.neighbors.size() + hnsw.levels.size()) + 8 * hnsw.offsets.size()
        storage = _storage(index)
        return int(links + int(storage.ntotal) * int(storage.code_size))
    invlists = getattr(index, "invlists", None)
    if invlists is not None:
        total += 8 * int(index.ntotal)
    return total


def reserve(index: Any, rows: int) -> None:
    """Give a flat-coded FAISS index (flat, or an HNSW's storage and links) room for
    ``rows`` rows up front. FAISS grows its arrays as ``std::vector`` does, by reallocating:
    at that moment the old and the new array are both held (a build's peak was 1.55× its
    final size at 200k × 384); with the room taken once, a build only fills it."""
    hnsw = getattr(index, "hnsw", None)
    storage = _storage(index)
    if hnsw is not None:
        m = int(hnsw.nb_neighbors(1))  # links per vertex above level 0; 2m at level 0
        _grow(hnsw.neighbors, int(rows * (2 * m + m / max(m - 1, 1))))
    codes = getattr(storage, "codes", None)
    if codes is None:
        codes = getattr(storage, "xb", None)
    if codes is not None:
        _grow(codes, rows * int(storage.code_size))


def _storage(index: Any) -> Any:
    # Where a flat-coded index keeps its codes: an HNSW's storage index, else the index.
    if not hasattr(index, "storage"):
        return index
    binary = isinstance(index, faiss.IndexBinary)
    return (faiss.downcast_IndexBinary if binary else faiss.downcast_index)(index.storage)


def _grow(vector: Any, size: int) -> None:
    # Capacity for ``size`` elements, contents kept (std::vector keeps capacity on shrink).
    kept = int(vector.size())
    if size > kept and vector.is_owned:
        vector.resize(size)
        vector.resize(kept)


def rescore(
    ids: np.ndarray, queries: np.ndarray, rows_of: RowSource, n: int, metric: Metric
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's candidates (``ids``, -1 for none) ordered by exact score against their
    float32 rows, the best ``n`` kept; a candidate whose row is gone is dropped."""
    dim = queries.shape[1]
    wanted = np.unique(ids[ids >= 0])
    found = rows_of(wanted)
    rows = np.zeros((wanted.shape[0] + 1, dim), dtype=np.float32)  # last row: missing
    have = np.zeros(wanted.shape[0] + 1, dtype=bool)
    for i, item in enumerate(wanted.tolist()):
        vector = found.get(item)
        if vector is not None:
            rows[i], have[i] = vector, True
    if metric == "cosine":  # the store keeps vectors as written; the index, unit length
        rows = unit_rows(rows)
    at = np.where(ids >= 0, np.searchsorted(wanted, ids), wanted.shape[0])
    candidates = rows[at]  # (queries, candidates, dim)
    if metric == "l2":
        scores = -np.square(candidates - queries[:, None, :]).sum(axis=2)
    else:
        scores = np.einsum("qd,qcd->qc", queries, candidates)
    scores = np.where(have[at], scores, -np.inf).astype(np.float32)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    best = np.take_along_axis(scores, order, axis=1)
    chosen = np.where(np.isfinite(best), np.take_along_axis(ids, order, axis=1), -1)
    if best.shape[1] < n:  # fewer candidates than wanted: pad as FAISS does
        pad = n - best.shape[1]
        chosen = np.pad(chosen, ((0, 0), (0, pad)), constant_values=-1)
        best = np.pad(best, ((0, 0), (0, pad)), constant_values=-np.inf)
    return chosen, best
