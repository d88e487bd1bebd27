"""What exact search costs on this machine, and so how far ``auto`` keeps it.

An exact single-query search reads every stored value once: its time grows with
``rows × dim`` and, past the CPU caches, is bounded by memory bandwidth. :func:`measure` times
the very code a search runs (one BLAS product over a float32 matrix larger than any cache,
then the top-k), once per process, and :meth:`ExactCost.limit` turns a latency budget into
the number of vectors of a given dimension that still answer within it. ``auto`` collections
stay exact below that number and move to HNSW beyond it.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from dataclasses import dataclass

import numpy as np

from latentspace.index.flat import blas_top_k, omp_threads

__all__ = ["CALIBRATION_BYTES", "ExactCost", "ExactLimits", "measure"]

logger = logging.getLogger(__name__)

# Larger than the last-level cache of any server CPU, so the scan runs at memory speed.
CALIBRATION_BYTES = 96 << 20
_CALIBRATION_DIM = 256
_REPEATS = 5


@dataclass(frozen=True)
class ExactCost:
    """Seconds an exact single-query search spends per stored value (one row × one dim)."""

    seconds_per_value: float

    def seconds(self, n: int, dim: int) -> float:
        """Predicted time of one exact search over ``n`` vectors of ``dim``."""
        return self.seconds_per_value * n * dim

    def limit(self, dim: int, budget_s: float) -> int:
        """The most vectors of ``dim`` one exact search answers within ``budget_s``."""
        return max(1, math.floor(budget_s / (self.seconds_per_value * dim)))


def measure(k: int = 10, nbytes: int = CALIBRATION_BYTES) -> ExactCost:
    """Time single-query exact searches over ``nbytes`` of float32 rows (median of 5)."""
    rows = max(1, nbytes // (4 * _CALIBRATION_DIM))
    matrix = np.full((rows, _CALIBRATION_DIM), 1.0 / math.sqrt(_CALIBRATION_DIM), np.float32)
    matrix[:, 0] = np.linspace(-1.0, 1.0, rows, dtype=np.float32)  # scores that differ
    query = np.full((1, _CALIBRATION_DIM), 1.0 / math.sqrt(_CALIBRATION_DIM), np.float32)
    times = []
    with omp_threads(1):
        blas_top_k(matrix, frozenset(), query, k)  # warm: pages mapped, BLAS loaded
        for _ in range(_REPEATS):
            started = time.perf_counter()
            blas_top_k(matrix, frozenset(), query, k)
            times.append(time.perf_counter() - started)
    return ExactCost(statistics.median(times) / (rows * _CALIBRATION_DIM))


class ExactLimits:
    """Per dimension, the vectors below which ``auto`` collections search exactly.

    ``pinned`` when given (the ``exact_limit`` setting); otherwise as many as one exact
    search answers within ``latency_ms``, from the cost measured here on first use.
    """

    def __init__(self, latency_ms: float, pinned: int | None = None) -> None:
        self._budget_s = latency_ms / 1000
        self._pinned = pinned
        self._cost: ExactCost | None = None
        self._lock = threading.Lock()

    def limit(self, dim: int) -> int:
        """The line for vectors of ``dim`` (measures once, the first time it is asked)."""
        if self._pinned is not None:
            return self._pinned
        with self._lock:
            if self._cost is None:
                self._cost = measure()
                logger.info(
                    "exact search costs %.3f ns per stored value here: auto collections stay "
                    "exact up to %d vectors of 384 dims (%d of 512) within %.1f ms",
                    self._cost.seconds_per_value * 1e9,
                    self._cost.limit(384, self._budget_s),
                    self._cost.limit(512, self._budget_s),
                    self._budget_s * 1000,
                )
            return self._cost.limit(dim, self._budget_s)
