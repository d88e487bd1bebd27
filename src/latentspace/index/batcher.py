"""Micro-batching: concurrent single-vector searches run as one FAISS call.

A FAISS search of 32 queries costs far less than 32 searches of one (one BLAS call or one
pass of OpenMP threads instead of 32, and one Python→C++ crossing). Requests that arrive
while a search is running queue up; when it finishes, one waiting caller (the *leader*)
takes everything queued and searches it at once, then hands leadership to the next waiter.
There is no timer: a lone query runs at once, so batching adds no latency when idle and
only forms batches when callers already wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BatchSearch", "MicroBatcher"]

# queries (n, dim) float32, k → (ids (n, k) int64, scores (n, k) float32)
BatchSearch = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass
class _Request:
    query: np.ndarray
    k: int
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    ids: np.ndarray | None = None
    scores: np.ndarray | None = None
    error: BaseException | None = None


class MicroBatcher:
    """Collects concurrent ``search(query, k)`` calls into batched ``search_batch`` calls."""

    def __init__(self, search_batch: BatchSearch, *, max_batch: int = 256) -> None:
        self._search_batch = search_batch
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Request] = []
        self._busy = False

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of one query: ``(ids (k,), scores (k,))``, padded with -1 like FAISS."""
        request = _Request(np.asarray(query, dtype=np.float32).reshape(-1), k)
        with self._lock:
            self._queue.append(request)
            leader = not self._busy
            if leader:
                self._busy = True
        if not leader:
            request.done.wait()
            if request.lead:
                self._lead()
                request.done.wait()
        else:
            self._lead()
        if request.error is not None:
            raise request.error
        assert request.ids is not None
        assert request.scores is not None
        return request.ids, request.scores

    def _lead(self) -> None:
        # Runs one batch (which holds this caller's own request unless it already ran),
        # then passes the lead to the oldest waiter, or marks the batcher idle.
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
        if batch:
            self._run(batch)
        with self._lock:
            if self._queue:
                successor = self._queue[0]
                successor.lead = True
                successor.done.set()
            else:
                self._busy = False

    def _run(self, batch: list[_Request]) -> None:
        k = max(r.k for r in batch)
        try:
            ids, scores = self._search_batch(np.stack([r.query for r in batch]), k)
        except BaseException as e:  # every waiter must wake, with the error
            for r in batch:
                r.error = e
                r.done.set()
            return
        for row, r in enumerate(batch):
            r.ids, r.scores = ids[row, : r.k], scores[row, : r.k]
            r.lead = False
            r.done.set()
