"""FAISS-backed :class:`VectorIndex`: flat, HNSW, IVF-Flat, IVF-PQ or any factory string.

Labels inside FAISS are *slots* (a counter this class owns), not the caller's ids; ``slot →
id`` is a NumPy array and ``id → slot`` a :class:`~.slots.SlotMap`, so upserts, removals and
allow-lists translate whole arrays at once. For flat, HNSW and IVF-PQ the slot is FAISS's
sequential position: a removed or replaced vector stays as a dead slot, excluded by a
selector, until a rebuild (:class:`~.managed.ManagedIndex`) drops the tombstones. IVF-Flat
deletes in place. A deferred HNSW write is linked into the graph in the background and
searched exactly until then (:mod:`.delta`). Flat and HNSW rows may be compact codes,
rescored against float32 rows read elsewhere (:mod:`.codes`). Searches share a
readers–writer lock, writes take it alone; per-query knobs and selectors travel in
``SearchParameters``: the shared index is never mutated for a query."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Unpack

import faiss
import numpy as np

from latentspace.errors import InvalidInput, VectorIndexError
from latentspace.index import codes
from latentspace.index.base import (
    Predicate,
    SearchOptions,
    SearchParams,
    SearchResult,
    both,
    check_ids,
    empty_answer,
    finish_search,
)
from latentspace.index.delta import Delta, Merger
from latentspace.index.exact import search_exactly
from latentspace.index.flat import (
    SINGLE_THREAD_BELOW,
    blas_top_k,
    flat_rows,
    gpu_available,
    omp_threads,
    stored_rows,
)
from latentspace.index.locks import ReadWriteLock
from latentspace.index.persist import Manifest, read_faiss, write_faiss
from latentspace.index.selectors import bitmap_selector, excluding
from latentspace.index.slots import SlotMap
from latentspace.index.spec import (
    IndexSpec,
    create_faiss,
    exact_below,
    quantization_of,
    rescore_of,
    search_parameters,
    widened,
)
from latentspace.types import Metric
from latentspace.vectors import prepare_rows

__all__ = ["FaissIndex"]

logger = logging.getLogger(__name__)

# A deferred write's rows enter the graph in batches of this many (each batch holds the
# write lock: searches wait for at most one), and a write waits for the merge while more
# than DELTA_LIMIT rows are unmerged (each search scores them all exactly).
MERGE_BATCH = 2048
DELTA_LIMIT = 16_384


class FaissIndex:
    """A mutable FAISS index keyed by caller-owned int64 ids."""

    def __init__(self, spec: IndexSpec, dim: int, *, use_gpu: bool = False) -> None:
        if dim < 1:
            raise InvalidInput(f"dim must be positive, got {dim}")
        self._requested = spec  # parameters left open are chosen when the data arrives
        self._spec = spec
        self._dim = dim
        self._metric: Metric = spec.metric
        # The FAISS index, labels are slots; built on the first add (IVF kinds train on it).
        self._cpu: Any = None
        self._gpu: Any = None
        self._gpu_resources: Any = None
        gpu_kind = spec.kind in ("flat", "ivf") and quantization_of(spec) == "none"
        self._use_gpu = use_gpu and gpu_available() and gpu_kind
        self._slot_ids = np.empty(0, dtype=np.int64)  # slot → id, -1 for dead/removed slots
        self._id_slot = SlotMap()
        self._delta = Delta(dim, spec.metric)  # HNSW rows not yet linked into the graph
        self._merger = Merger(self.merge, lambda: len(self._delta), batch=MERGE_BATCH)
        self._dead: set[int] = set()  # slots still inside the FAISS index but not live
        self._lock = ReadWriteLock()
        self._read_only = False  # set for memory-mapped loads
        self._params_cache: dict[tuple[int | None, int | None, bool], Any] = {}
        self._dead_selector: Any = None  # cached IDSelector excluding the tombstones
        self._row_source: codes.RowSource | None = None  # float32 rows by id, for rescoring

    # -- properties ----------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``flat``, ``hnsw``, ``ivf``, ``ivfpq`` or ``factory`` (a FAISS factory string in
        ``spec.params``)."""
        return self._spec.kind

    @property
    def spec(self) -> IndexSpec:
        """The spec with every parameter filled in."""
        return self._spec

    @property
    def dim(self) -> int:
        """Length of every vector."""
        return self._dim

    @property
    def metric(self) -> Metric:
        """How scores are computed: inner product (``cosine`` on unit vectors, ``ip``) or
        negated squared distance (``l2``); higher is better for every metric."""
        return self._metric

    @property
    def quantization(self) -> str:
        """How rows are stored: ``none`` (float32), ``fp16``, ``sq8`` or ``binary``."""
        return quantization_of(self._spec)

    def rows_from(self, source: codes.RowSource | None) -> None:
        """Where a quantized index reads the float32 rows it rescores candidates with;
        without one, its answers carry the codes' approximate scores."""
        self._row_source = source

    def _rescoring(self, params: SearchParams | None = None) -> int:
        # Candidates per wanted hit to rescore exactly (0: the codes' scores are final).
        if self.quantization == "none" or self._row_source is None:
            return 0
        return (params.rescore if params else None) or rescore_of(self._spec)

    @property
    def dead_ratio(self) -> float:
        """Share of FAISS entries that are tombstones (every kind but IVF-Flat)."""
        total = len(self._id_slot) + len(self._dead)
        return len(self._dead) / total if total else 0.0

    @property
    def faiss_index(self) -> Any:
        """The underlying FAISS index (labels are slots), for diagnostics and benchmarks."""
        return self._cpu

    @property
    def on_gpu(self) -> bool:
        """Whether searches run on a GPU copy."""
        return self._gpu is not None

    def __len__(self) -> int:
        return len(self._id_slot)

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, int | np.integer) and int(item_id) in self._id_slot

    def memory_bytes(self) -> int:
        """Resident bytes: codes (or rows), graph links, id maps and unmerged rows."""
        return codes.faiss_bytes(self._cpu) + 16 * self._slot_ids.shape[0] + self._delta.rows.nbytes

    def ids(self) -> np.ndarray:
        """The live ids, in slot order."""
        with self._lock.read():
            return self._slot_ids[self._slot_ids >= 0].copy()

    # -- building ------------------------------------------------------------------------
    def _create(self, train: np.ndarray) -> None:
        self._spec, self._cpu = create_faiss(self._requested, self._dim, train)

    def _sync_gpu(self) -> None:
        if not self._use_gpu or self._cpu is None:
            return
        if self._gpu_resources is None:
            self._gpu_resources = faiss.StandardGpuResources()
        self._gpu = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._cpu)

    def _prepare(self, vectors: np.ndarray, name: str) -> np.ndarray:
        return prepare_rows(vectors, self._dim, self._metric, name=name)

    # -- writes --------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray, *, defer: bool = False) -> None:
        """Insert or replace the vectors of ``ids`` (upsert).

        ``defer``: an HNSW index links the rows into its graph later, in the background
        (see :mod:`.delta`); they are searchable at once either way.
        """
        x = self._prepare(vectors, "vectors")
        keys = check_ids(ids, count=x.shape[0])
        if keys.shape[0] == 0:
            return
        self._check_writable()
        with self._lock.write():
            if self._cpu is None:
                self._create(x)
            self._drop(keys)
            first = self._slot_ids.shape[0]
            slots = np.arange(first, first + keys.shape[0])
            if self._spec.kind == "ivf":
                self._cpu.add_with_ids(x, slots)
            elif defer and self._spec.kind == "hnsw":
                self._delta.append(x, first)
            else:  # sequential labels: the next slot is FAISS's next position
                self._merge(len(self._delta))
                assert self._cpu.ntotal == first, "slot counter out of step with FAISS"
                self._cpu.add(codes.encoded(self.quantization, x))
            self._slot_ids = np.concatenate([self._slot_ids, keys])
            self._id_slot.assign(keys, slots)
            self._sync_gpu()
        if len(self._delta) > DELTA_LIMIT:  # back-pressure: this write helps merge
            self.merge(len(self._delta) - DELTA_LIMIT // 2)
        elif len(self._delta):
            self._merger.start()

    @property
    def unmerged(self) -> int:
        """Rows written but not yet linked into the graph (searched exactly meanwhile)."""
        return len(self._delta)

    def merge(self, count: int | None = None) -> None:
        """Link ``count`` (default: all) unmerged rows into the graph now, in batches."""
        left = len(self._delta) if count is None else count
        while left > 0 and len(self._delta):
            with self._lock.write():
                left -= self._merge(min(left, MERGE_BATCH))

    def _merge(self, count: int) -> int:
        # Caller holds the write lock. FAISS spreads the batch over its OpenMP threads.
        rows = self._delta.head(count)
        if rows.shape[0]:
            assert self._cpu.ntotal == self._delta.first_slot, "delta out of step with FAISS"
            self._cpu.add(codes.encoded(self.quantization, rows))
            self._delta.merged(rows.shape[0])
        return int(rows.shape[0])

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids``; returns how many were present."""
        keys = np.asarray(ids, dtype=np.int64).reshape(-1)
        self._check_writable()
        with self._lock.write():
            removed = self._drop(keys)
            self._sync_gpu()
        return removed

    def save(self, directory: Path, *, fingerprint: str = "", oplog_seq: int = 0) -> None:
        """Write the index and its manifest into ``directory`` (see :mod:`.persist`)."""
        while True:  # the file holds the whole graph (rows written meanwhile are merged too)
            self.merge()
            # a consistent snapshot: writers wait while the index streams to its file
            with self._lock.read():
                if len(self._delta):  # written between the merge and the lock
                    continue
                write_faiss(
                    Path(directory),
                    self._cpu,
                    self._slot_ids,
                    spec=self._spec.to_json(),
                    dim=self._dim,
                    count=len(self),
                    fingerprint=fingerprint,
                    oplog_seq=oplog_seq,
                    dead=sorted(self._dead),
                )
                return

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        fingerprint: str | None = None,
        dim: int | None = None,
        mmap: bool = False,
        use_gpu: bool = False,
    ) -> tuple[FaissIndex, Manifest]:
        """Load and verify an index written by :meth:`save` (``mmap``: memory-map the FAISS
        file read-only; see :func:`.persist.read_faiss` for the checks and errors)."""
        manifest, inner, slot_ids = read_faiss(
            Path(directory), fingerprint=fingerprint, dim=dim, mmap=mmap
        )
        index = cls(IndexSpec.from_json(manifest.spec), manifest.dim, use_gpu=use_gpu)
        index._cpu, index._slot_ids = inner, slot_ids
        index._id_slot = SlotMap.of(slot_ids)
        index._dead = set(manifest.dead)
        index._sync_gpu()
        index._read_only = mmap and index._cpu is not None
        return index, manifest

    def _check_writable(self) -> None:
        if self._read_only:
            raise VectorIndexError("this index was loaded memory-mapped and is read-only")

    def _drop(self, keys: np.ndarray) -> int:
        slot_array = self._id_slot.pop(keys)
        if not slot_array.size:
            return 0
        slots = slot_array.tolist()
        self._slot_ids[slot_array] = -1
        if self._spec.kind == "ivf":  # the hashtable direct map takes only an id array
            self._cpu.remove_ids(
                faiss.IDSelectorArray(slot_array.shape[0], faiss.swig_ptr(slot_array))
            )
        else:  # positions must stay put: tombstones until a rebuild
            self._dead.update(slots)
            self._dead_selector = None
        return len(slots)

    # -- reads ---------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, **options: Unpack[SearchOptions]) -> SearchResult:
        """The ``k`` best live ids per query (see :class:`VectorIndex`)."""
        params, allow = options.get("params"), options.get("allow")
        predicate, min_score = options.get("predicate"), options.get("min_score")
        offset = options.get("offset", 0)
        q = self._prepare(queries, "queries")
        with self._lock.read():
            if self._cpu is None:
                return finish_search(empty_answer, q, k, total=0)
            selector: Any = None
            total, slots, allowed = len(self._id_slot), np.empty(0, np.int64), None
            if allow is not None:
                slots = self._id_slot.lookup(np.asarray(allow, dtype=np.int64))
                slots = slots[slots >= 0]
                total = slots.shape[0]
                if self.kind != "flat" and total <= exact_below(len(self._id_slot)):
                    return self._search_subset(slots, q, k, predicate, min_score, offset, params)
                allowed = np.zeros(self._slot_ids.shape[0], dtype=bool)
                allowed[slots] = True
                if self._gpu is not None:  # GPU indexes take no selector: post-filter
                    wanted = np.asarray(allow, dtype=np.int64)
                    predicate = both(predicate, lambda ids: np.isin(ids, wanted))
                    total = len(self._id_slot)
                else:
                    selector = bitmap_selector(allowed)
                    fraction = total / max(1, len(self._id_slot))
                    params = widened(self._spec, params or SearchParams(), fraction, k + offset)
            elif self._dead and self._gpu is not None:  # no selectors on GPU: skip the dead
                predicate = both(predicate, lambda ids: np.ones(ids.shape[0], dtype=bool))
            elif self._dead:
                selector = self._live_selector()
            faiss_params = self._faiss_params(params or SearchParams(), selector)
            unmerged = self._delta.excluded(self._slot_ids, allowed)

            fetch = self._rescoring(params)
            quantization = self.quantization
            blas = self.kind == "flat" and quantization == "none" and self._metric != "l2"
            blas = blas and self._gpu is None and allow is None and q.shape[0] < SINGLE_THREAD_BELOW

            def raw(qs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
                if blas:
                    labels, scores = blas_top_k(flat_rows(self._cpu, self._dim), self._dead, qs, n)
                    ids = np.where(labels >= 0, self._slot_ids[labels], -1)
                    return ids, scores
                index = self._gpu if self._gpu is not None else self._cpu
                wanted = n * fetch if fetch else n
                coded = codes.encoded(quantization, qs)
                with omp_threads(qs.shape[0]):
                    if faiss_params is None:
                        distances, labels = index.search(coded, wanted)
                    else:
                        distances, labels = index.search(coded, wanted, params=faiss_params)
                distances = codes.approximate_scores(quantization, distances, self._dim)
                if unmerged is not None:
                    labels, distances = self._delta.merged_answer(
                        qs, wanted, labels, distances, unmerged
                    )
                ids = self._slot_ids[labels]
                missing = labels < 0  # FAISS pads short rows with -1
                if missing.any():
                    ids[missing] = -1
                scores = -distances if self._metric == "l2" else distances
                if fetch and self._row_source is not None:
                    return codes.rescore(ids, qs, self._row_source, n, self._metric)
                return ids, scores

            result = finish_search(
                raw, q, k, total=total, predicate=predicate, min_score=min_score, offset=offset
            )
            if selector is not None and allow is not None and predicate is None:
                # the walk missed allowed points it should have found: score them exactly
                found = (result.ids >= 0).sum(axis=1)
                if min_score is None and found.min() < min(k, max(0, total - offset)):
                    return self._search_subset(slots, q, k, None, None, offset, params)
            return result

    def _rows(self, slots: np.ndarray) -> np.ndarray:
        # The stored vectors of ``slots`` (IVF labels are not positions: only HNSW has a delta)
        return self._delta.overlay(slots, self._graph_rows)

    def _graph_rows(self, slots: np.ndarray) -> np.ndarray:
        return stored_rows(self._cpu, self.kind, self.quantization, slots, self._dim)

    def _live_selector(self) -> Any:
        # Built once per set of tombstones, not per query; FAISS only reads selectors.
        if self._dead_selector is None:
            self._dead_selector = excluding(np.fromiter(self._dead, dtype=np.int64))
        return self._dead_selector

    def _search_subset(
        self,
        slots: np.ndarray,
        queries: np.ndarray,
        k: int,
        predicate: Predicate | None,
        min_score: float | None,
        offset: int,
        params: SearchParams | None,
    ) -> SearchResult:
        # A selective filter starves a graph walk or a few IVF lists of candidates (the
        # allowed points may lie nowhere near the route), so score the allowed few exactly
        # (quantized rows: their decoded codes pick candidates, rescored against float32).
        fetch = self._rescoring(params)
        return search_exactly(
            self._slot_ids[slots],
            self._rows(slots),
            queries,
            k,
            self._metric,
            predicate=predicate,
            min_score=min_score,
            offset=offset,
            rescoring=(fetch, self._row_source) if fetch and self._row_source else None,
        )

    def _faiss_params(self, params: SearchParams, selector: Any) -> Any:
        if selector is not None:
            return search_parameters(self._spec, params, selector, on_gpu=self._gpu is not None)
        # FAISS only reads SearchParameters, so one object per setting serves every thread.
        key = (params.nprobe, params.ef_search, self._gpu is not None)
        cached = self._params_cache.get(key)
        if cached is None:
            cached = self._params_cache[key] = search_parameters(
                self._spec, params, None, on_gpu=self._gpu is not None
            )
        return cached

    # -- vectors, rebuild ---------------------------------------------------------------
    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """All live ids and their vectors, read at one instant (writers wait)."""
        with self._lock.read():
            live = np.flatnonzero(self._slot_ids >= 0)
            if live.size == 0:
                return np.empty(0, np.int64), np.zeros((0, self._dim), np.float32)
            return self._slot_ids[live].copy(), self._rows(live)

    @property
    def lossless(self) -> bool:
        """Whether :meth:`snapshot` returns the vectors exactly as added (normalised)."""
        return self._spec.kind in ("flat", "hnsw", "ivf") and self.quantization == "none"
