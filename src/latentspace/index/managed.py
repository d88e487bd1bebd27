"""A collection's live index: grows into a better kind and compacts, in the background.

:class:`ManagedIndex` holds the current :class:`FaissIndex`. After writes it checks whether
the ``auto`` planner would now pick another kind (exact → HNSW → IVF-PQ as the collection
grows) or whether tombstones passed ``compact_ratio``; if so a background thread builds the
replacement from a snapshot while writes go on, replays the writes made meanwhile, and swaps
it in under the lock. Searches never wait for a rebuild.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Unpack

import numpy as np

from latentspace.index import codes
from latentspace.index.base import SearchOptions, SearchResult
from latentspace.index.codes import RowSource
from latentspace.index.faiss_index import FaissIndex
from latentspace.index.spec import (
    EXACT_LIMIT,
    IndexSpec,
    buildable,
    plan_index,
    quantization_of,
    training_minimum,
)

__all__ = ["ManagedIndex", "VectorSource"]

logger = logging.getLogger(__name__)

VectorSource = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]
_ORDER = {"flat": 0, "ivf": 1, "hnsw": 1, "ivfpq": 2}
# A streamed rebuild of an IVF kind trains on this many vectors (their lists and codes are
# learnt from a sample of up to 64 per list; ~4·√n lists).
_IVF_POOL = 262_144


class ManagedIndex:
    """The current index of one collection, rebuilt in the background when it should be."""

    def __init__(
        self,
        index: FaissIndex,
        *,
        auto: bool = False,
        memory_budget: int | None = None,
        compact_ratio: float = 0.2,
        source: VectorSource | None = None,
        use_gpu: bool = False,
        exact_limit: int | None = EXACT_LIMIT,
        requested: IndexSpec | None = None,
        codes: dict[str, Any] | None = None,
        rows: RowSource | None = None,
    ) -> None:
        self._current = index
        self._rows = rows  # float32 rows by id: quantized indexes rescore with them
        index.rows_from(rows)
        self._requested = requested
        self._codes = codes or {}  # auto collections: quantization and rescore for the plan
        self._retry_at = 0  # after a failed rebuild: the size at which to try again
        self._auto = auto
        self._budget = memory_budget
        self._compact_ratio = compact_ratio
        self._source = source
        self._use_gpu = use_gpu
        self._exact_limit = exact_limit
        self._lock = threading.Lock()  # orders writes against the swap
        self._pending: list[tuple[str, np.ndarray, np.ndarray | None]] | None = None
        self._thread: threading.Thread | None = None
        self.rebuilds = 0
        self.last_error: BaseException | None = None

    @property
    def current(self) -> FaissIndex:
        """The index searches go to right now."""
        return self._current

    @property
    def exact_limit(self) -> int | None:
        """``auto`` indexes: the size below which they stay exact (None for other kinds)."""
        return self._exact_limit if self._auto else None

    @property
    def rebuilding(self) -> bool:
        """Whether a background rebuild is running."""
        return self._thread is not None and self._thread.is_alive()

    def __len__(self) -> int:
        return len(self._current)

    def request(self, requested: IndexSpec | None, codes: dict[str, Any] | None = None) -> None:
        """Ask for another index (None: ``auto``, planned with ``codes``: quantization and
        rescore); it is built in the background while the current one keeps serving."""
        with self._lock:
            self._requested, self._codes = requested, codes or {}
            self._auto = requested is None
            self._retry_at = 0
        self._maybe_rebuild()

    def spec_at(self, n: int, budget: int | None = None) -> IndexSpec:
        """The index this one is, or grows into, at ``n`` vectors (``auto``: as planned
        under ``budget`` bytes)."""
        current = self._current
        if not self._auto:
            return buildable(self._requested or current.spec, n)
        return plan_index(
            n,
            current.dim,
            current.metric,
            budget,
            exact_limit=EXACT_LIMIT if self._exact_limit is None else self._exact_limit,
            quantization=str(self._codes.get("quantization", "auto")),
            rescore=self._codes.get("rescore"),
        )

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Upsert into the current index (and into the one being built); an HNSW graph
        links the rows in the background, searching them exactly until then."""
        with self._lock:
            self._current.add(ids, vectors, defer=True)
            if self._pending is not None:
                self._pending.append(("add", np.asarray(ids), np.asarray(vectors)))
        self._maybe_rebuild()

    def remove(self, ids: np.ndarray) -> int:
        """Remove from the current index (and from the one being built)."""
        with self._lock:
            removed = self._current.remove(ids)
            if self._pending is not None:
                self._pending.append(("remove", np.asarray(ids), None))
        self._maybe_rebuild()
        return removed

    def search(self, queries: np.ndarray, k: int, **options: Unpack[SearchOptions]) -> SearchResult:
        """Search the current index (see :meth:`FaissIndex.search`)."""
        return self._current.search(queries, k, **options)

    def target_spec(self) -> IndexSpec | None:
        """The spec a rebuild would produce now, or ``None`` if none is due."""
        current, n = self._current, len(self._current)
        if n < self._retry_at:  # a rebuild failed at a smaller size: wait for the data to grow
            return None
        fresh = self._requested  # held exact while too small to train, if it is another kind
        if self._auto:
            fresh = self.spec_at(n, self._budget)
        grows = fresh is not None and _ORDER[fresh.kind] > _ORDER.get(current.kind, 0)
        recoded = fresh is not None and quantization_of(fresh) != current.quantization
        if fresh is not None and fresh.kind == current.kind and recoded:
            grows = True  # the same kind over other codes (sq8 from a million, or as asked)
        target = None if self._auto and not grows else fresh  # auto only ever grows
        changes = target is not None and (target.kind != current.kind or recoded)
        if target is not None and changes and n >= training_minimum(target):
            return target
        if current.dead_ratio > self._compact_ratio:
            # the parameters a fresh plan picks for today's size (nlist grows with n), not
            # those chosen when the index was small
            if fresh is not None and fresh.kind == current.kind:
                return fresh
            return IndexSpec(current.kind, current.metric, _codes(current.spec.params))
        return None

    def _maybe_rebuild(self) -> None:
        spec = self.target_spec()
        if spec is None or self.rebuilding:
            return
        self.rebuild(spec, background=True)

    def rebuild(self, spec: IndexSpec | None = None, *, background: bool = False) -> None:
        """Rebuild into ``spec`` (default: the same kind), from the source or the index."""
        current = self._current
        target = spec or IndexSpec(current.kind, current.metric, _codes(current.spec.params))
        with self._lock:
            self._pending = []
        if background:
            self._thread = threading.Thread(
                target=self._build_and_swap, args=(target,), name="index-rebuild", daemon=True
            )
            self._thread.start()
        else:
            self._build_and_swap(target)

    def wait(self, timeout: float | None = None) -> None:
        """Block until a running background rebuild has finished (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _snapshot(self) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        if self._source is not None:
            return self._source()
        if not self._current.lossless:
            raise RuntimeError(f"no vector source to rebuild a {self._current.kind} index")
        return [self._current.snapshot()]

    def _build_and_swap(self, spec: IndexSpec) -> None:
        try:
            fresh = FaissIndex(spec, self._current.dim, use_gpu=self._use_gpu)
            fresh.rows_from(self._rows)
            pool = _IVF_POOL if spec.kind in ("ivf", "ivfpq", "factory") else 0
            expected = len(self._current) + 1_024  # and room for writes meanwhile
            fill(fresh, self._snapshot(), max(pool, training_minimum(spec)), expected)
            with self._lock:
                for _, op_ids, op_vectors in self._pending or []:
                    if op_vectors is not None:  # an add
                        fresh.add(op_ids, op_vectors)
                    else:
                        fresh.remove(op_ids)
                old, self._current, self._pending = self._current, fresh, None
            self.rebuilds += 1
            logger.info("index rebuilt: %s → %s, %d vectors", old.kind, fresh.kind, len(fresh))
        except Exception as e:  # a failed rebuild leaves the old index serving
            with self._lock:
                self._pending = None
                self._retry_at = 2 * max(len(self._current), 1)
            self.last_error = e
            logger.exception("index rebuild into %s failed; the old index keeps serving", spec)

    def describe(self) -> dict[str, Any]:
        """Kind, parameters, size and tombstones, for collection stats."""
        current = self._current
        return {
            "kind": current.kind,
            "quantization": current.quantization,
            "params": dict(current.spec.params),
            "count": len(current),
            "dead_ratio": current.dead_ratio,
            "rebuilding": self.rebuilding,
            "on_gpu": current.on_gpu,
            "exact_limit": self.exact_limit,
        }


def _codes(params: dict[str, Any]) -> dict[str, Any]:
    # The parameters a compaction keeps: how rows are coded, not sizes chosen for fewer rows.
    return {key: params[key] for key in ("quantization", "rescore") if key in params}


def fill(
    index: FaissIndex,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    train: int,
    expected: int = 0,
) -> None:
    """Add ``batches`` to a new ``index`` one at a time, so a rebuild holds one batch beside
    the index rather than every vector twice; batches are pooled only until the first add
    has the ``train`` vectors its kind learns from (IVF lists, PQ and sq8 codes). Room for
    ``expected`` rows is taken after the first add (no reallocation on the way)."""
    pooled: list[tuple[np.ndarray, np.ndarray]] = []
    for batch in batches:
        pooled.append(batch)
        if len(index) or sum(ids.shape[0] for ids, _ in pooled) >= max(train, 1):
            _add_pooled(index, pooled, expected)
            pooled = []
    if pooled:
        _add_pooled(index, pooled, expected)


def _add_pooled(
    index: FaissIndex, pooled: list[tuple[np.ndarray, np.ndarray]], expected: int
) -> None:
    # One add of the pooled batches; after the first, room for ``expected`` rows.
    first = not len(index)
    ids = pooled[0][0] if len(pooled) == 1 else np.concatenate([b[0] for b in pooled])
    vectors = pooled[0][1] if len(pooled) == 1 else np.concatenate([b[1] for b in pooled])
    if ids.size:
        index.add(ids, vectors)
    if first and len(index) and index.kind in ("flat", "hnsw"):
        codes.reserve(index.faiss_index, expected)
