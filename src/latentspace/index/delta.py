"""The rows added to a graph index but not yet linked into it, searched exactly meanwhile.

Inserting into HNSW is the dearest part of a write (each vector walks the graph to find its
neighbours), and it is fastest in large batches that FAISS spreads over OpenMP threads. So a
write only appends its rows here and returns; a background merge moves them into the graph
in batches. Until then a search scores them by one matrix product and merges them with the
graph's answer, so a row is searchable the moment its write is acknowledged.

Row ``i`` of the delta is slot ``first_slot + i``: the position FAISS gives it when merged
(graphs only append), so slots are final from the start and nothing is renumbered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from latentspace.index.exact import top_k
from latentspace.types import Metric

__all__ = ["Delta", "Merger"]

logger = logging.getLogger(__name__)


class Delta:
    """A growing float32 matrix of unmerged rows, taken from the front in merge order."""

    def __init__(self, dim: int, metric: Metric) -> None:
        self._metric = metric
        self._buffer = np.empty((0, dim), dtype=np.float32)
        self._start = 0  # rows before it are merged
        self._end = 0
        self.first_slot = 0  # the slot of the first unmerged row

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def rows(self) -> np.ndarray:
        """The unmerged rows (a view)."""
        return self._buffer[self._start : self._end]

    def append(self, rows: np.ndarray, first_slot: int) -> None:
        """Add ``rows``, whose first slot is ``first_slot`` (the next after the last row)."""
        if not len(self):
            self._start = self._end = 0
            self.first_slot = first_slot
        assert first_slot == self.first_slot + len(self), "delta slots out of step"
        need = self._end + rows.shape[0]
        if need > self._buffer.shape[0]:
            size = max(need - self._start, 2 * len(self), 1024)
            grown = np.empty((size, self._buffer.shape[1]), dtype=np.float32)
            grown[: len(self)] = self.rows
            self._buffer, self._end, self._start = grown, len(self), 0
        self._buffer[self._end : self._end + rows.shape[0]] = rows
        self._end += rows.shape[0]

    def head(self, count: int) -> np.ndarray:
        """The first ``count`` unmerged rows (a view; valid until the next append)."""
        return self._buffer[self._start : self._start + min(count, len(self))]

    def merged(self, count: int) -> None:
        """The first ``count`` rows are in the graph now."""
        count = min(count, len(self))
        self._start += count
        self.first_slot += count
        if not len(self):  # let the memory go
            self._buffer = np.empty((0, self._buffer.shape[1]), dtype=np.float32)
            self._start = self._end = 0

    def gather(self, slots: np.ndarray) -> np.ndarray:
        """The rows of ``slots`` (each within the delta)."""
        return self.rows[np.asarray(slots, dtype=np.int64) - self.first_slot]

    def overlay(self, slots: np.ndarray, graph: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """The rows of ``slots``: unmerged ones from here, the others from ``graph``."""
        unmerged = slots >= self.first_slot
        if not len(self) or not unmerged.any():
            return graph(slots)
        out = np.empty((slots.shape[0], self._buffer.shape[1]), dtype=np.float32)
        out[unmerged] = self.gather(slots[unmerged])
        out[~unmerged] = graph(slots[~unmerged])
        return out

    def excluded(self, slot_ids: np.ndarray, allowed: np.ndarray | None) -> np.ndarray | None:
        """Per unmerged row, whether a search leaves it out (dead: its ``slot_ids`` entry is
        -1, or not ``allowed``); None when every row is merged."""
        if not len(self):
            return None
        span = slice(self.first_slot, self.first_slot + len(self))
        out = slot_ids[span] < 0
        return out if allowed is None else out | ~allowed[span]

    def search(
        self, queries: np.ndarray, n: int, excluded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Slots (-1 padded) and scores (higher is better) of each query's ``n`` best rows,
        leaving out the rows where ``excluded`` (one flag per row) is set."""
        rows = self.rows
        if self._metric == "l2":
            scores = -(
                (queries**2).sum(1)[:, None] - 2 * queries @ rows.T + (rows**2).sum(1)[None, :]
            )
        else:
            scores = queries @ rows.T
        scores[:, excluded] = -np.inf
        top, top_scores = top_k(scores, n)
        slots = np.where(np.isfinite(top_scores), top + self.first_slot, -1)
        return slots.astype(np.int64), top_scores.astype(np.float32)

    def merged_answer(
        self,
        queries: np.ndarray,
        n: int,
        labels: np.ndarray,
        distances: np.ndarray,
        excluded: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The graph's answer (FAISS slots and distances: smaller is better for l2) merged
        with the unmerged rows' best ``n``, in the same terms."""
        l2 = self._metric == "l2"
        slots, scores = self.search(queries, n, excluded)
        graph = np.where(labels >= 0, -distances if l2 else distances, -np.inf)
        both_scores = np.concatenate([graph.astype(np.float32), scores], axis=1)
        top, best = top_k(both_scores, n)
        merged = np.take_along_axis(np.concatenate([labels, slots], axis=1), top, axis=1)
        merged[~np.isfinite(best)] = -1
        return merged, -best if l2 else best


class Merger:
    """The background thread that merges unmerged rows, running while any are left.

    Args:
        merge: links up to this many rows into the graph (taking the index's write lock).
        pending: how many rows are unmerged now.
        batch: rows per merge call; the lock is let go between calls.
    """

    def __init__(
        self, merge: Callable[[int], None], pending: Callable[[], int], *, batch: int
    ) -> None:
        self._merge, self._pending, self._batch = merge, pending, batch
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def start(self) -> None:
        """Make sure a merge is under way (a no-op while one runs)."""
        with self._guard:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hnsw-merge", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        # The check for rows left and the hand-over happen under one guard, so a write
        # that appends after the last check finds no thread and starts one.
        try:
            while True:
                self._merge(self._batch)
                with self._guard:
                    if not self._pending():
                        self._thread = None
                        return
                time.sleep(0.001)  # let the searches queued behind the batch in first
        except Exception:  # the rows stay searchable exactly; the next write retries
            logger.exception("merging rows into the HNSW graph failed")
            with self._guard:
                self._thread = None
