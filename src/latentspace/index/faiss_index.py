"""FAISS-backed :class:`VectorIndex`: flat, HNSW, IVF-Flat, IVF-PQ or any factory string.

Labels inside FAISS are *slots* (a counter this class owns), not the caller's ids, and
``slot → id`` is a NumPy array (``id → slot`` a dict), so upsert, remove and allow-lists
translate in O(1) per id. For flat, HNSW and IVF-PQ the slot is FAISS's own sequential
position: nothing is ever deleted from them, a removed or replaced vector stays as a dead slot
excluded by an id selector until a rebuild (:class:`~latentspace.index.managed.ManagedIndex`)
drops the tombstones. That avoids ``IndexIDMap``, whose per-search label translation runs an
OpenMP loop that costs milliseconds per single query. IVF-Flat stores labels itself and
deletes in place.

Concurrency: searches share a readers–writer lock, writes take it alone. Per-query
``nprobe``/``efSearch`` go through FAISS ``SearchParameters``; the shared index is never
mutated for a query.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Unpack

import faiss
import numpy as np

from latentspace.errors import IndexCorrupted, InvalidInput, VectorIndexError
from latentspace.index.base import (
    Predicate,
    SearchOptions,
    SearchParams,
    SearchResult,
    check_ids,
    finish_search,
)
from latentspace.index.exact import search_exactly
from latentspace.index.flat import SINGLE_THREAD_BELOW, blas_top_k, omp_threads
from latentspace.index.locks import ReadWriteLock
from latentspace.index.persist import Manifest, verified_files, write_generation
from latentspace.index.spec import IndexSpec, exact_below, search_parameters, widened
from latentspace.types import Metric
from latentspace.vectors import prepare_rows

__all__ = ["FaissIndex", "gpu_available"]

logger = logging.getLogger(__name__)


def gpu_available() -> bool:
    """True when this faiss build has GPU support and sees a GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class FaissIndex:
    """A mutable FAISS index keyed by caller-owned int64 ids."""

    def __init__(self, spec: IndexSpec, dim: int, *, use_gpu: bool = False) -> None:
        if dim < 1:
            raise InvalidInput(f"dim must be positive, got {dim}")
        self._requested = spec  # parameters left open are chosen when the data arrives
        self._spec = spec
        self._dim = dim
        self._metric: Metric = spec.metric
        self._faiss_metric = faiss.METRIC_L2 if spec.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        # The FAISS index, labels are slots; built on the first add (IVF kinds train on it).
        self._cpu: Any = None
        self._gpu: Any = None
        self._gpu_resources: Any = None
        self._use_gpu = use_gpu and gpu_available() and self._spec.kind in ("flat", "ivf")
        self._slot_ids = np.empty(0, dtype=np.int64)  # slot → id, -1 for dead/removed slots
        self._id_slot: dict[int, int] = {}
        self._dead: set[int] = set()  # slots still inside the FAISS index but not live
        self._lock = ReadWriteLock()
        self._read_only = False  # set for memory-mapped loads
        self._params_cache: dict[tuple[int | None, int | None, bool], Any] = {}
        self._dead_selector: Any = None  # cached IDSelector excluding the tombstones

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

    def ids(self) -> np.ndarray:
        """The live ids, in slot order."""
        with self._lock.read():
            return self._slot_ids[self._slot_ids >= 0].copy()

    # -- building ------------------------------------------------------------------------
    def _factory_string(self, n_train: int) -> str:
        self._spec = self._requested.with_defaults(n_train, self._dim)
        p, kind = self._spec.params, self._spec.kind
        if kind == "flat":
            return "Flat"
        if kind == "hnsw":
            return f"HNSW{int(p['m'])},Flat"
        if kind == "factory":
            return str(p["factory"])
        nlist = min(int(p["nlist"]), max(1, n_train // 39))
        if nlist != p["nlist"]:
            logger.info("IVF trained on %d vectors: nlist lowered to %d", n_train, nlist)
            self._spec = IndexSpec(kind, self._metric, {**p, "nlist": nlist})
        if kind == "ivf":
            return f"IVF{nlist},Flat"
        # "np": no polysemous training, which costs ~2 s per sub-quantizer and buys nothing here
        refine = ",Refine(SQ8)" if p.get("refine", "SQ8") == "SQ8" else ""
        return f"IVF{nlist},PQ{int(p['m'])}x{int(p['nbits'])}np{refine}"

    def _create(self, train: np.ndarray) -> None:
        inner: Any = faiss.index_factory(
            self._dim, self._factory_string(train.shape[0]), self._faiss_metric
        )
        if self._spec.kind == "hnsw":
            inner.hnsw.efConstruction = int(self._spec.params["ef_construction"])
            inner.hnsw.efSearch = int(self._spec.params["ef_search"])
        if not inner.is_trained:
            sample = train
            cap = max(64 * 1024, 64 * int(self._spec.params.get("nlist", 1)))
            if train.shape[0] > cap:
                rng = np.random.default_rng(0)
                sample = train[rng.choice(train.shape[0], cap, replace=False)]
            inner.train(sample)
        if self._spec.kind == "ivf":
            # a hashtable direct map gives remove and reconstruct by label
            inner.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        self._cpu = inner

    def _sync_gpu(self) -> None:
        if not self._use_gpu or self._cpu is None:
            return
        if self._gpu_resources is None:
            self._gpu_resources = faiss.StandardGpuResources()
        self._gpu = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._cpu)

    def _prepare(self, vectors: np.ndarray, name: str) -> np.ndarray:
        return prepare_rows(vectors, self._dim, self._metric, name=name)

    # -- writes --------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace the vectors of ``ids`` (upsert)."""
        x = self._prepare(vectors, "vectors")
        keys = check_ids(ids, count=x.shape[0])
        if keys.shape[0] == 0:
            return
        self._check_writable()
        with self._lock.write():
            if self._cpu is None:
                self._create(x)
            self._drop(keys)
            slots = np.arange(self._slot_ids.shape[0], self._slot_ids.shape[0] + keys.shape[0])
            if self._spec.kind == "ivf":
                self._cpu.add_with_ids(x, slots)
            else:  # sequential labels: the next slot is FAISS's next position
                assert self._cpu.ntotal == slots[0], "slot counter out of step with FAISS"
                self._cpu.add(x)
            self._slot_ids = np.concatenate([self._slot_ids, keys])
            self._id_slot.update(zip(keys.tolist(), slots.tolist(), strict=True))
            self._sync_gpu()

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
        with self._lock.read():  # a consistent snapshot: writers wait
            blob = b"" if self._cpu is None else faiss.serialize_index(self._cpu).tobytes()
            slots = io.BytesIO()
            np.save(slots, self._slot_ids, allow_pickle=False)
            count, dead = len(self), sorted(self._dead)
        write_generation(
            Path(directory),
            {"index.faiss": blob, "slots.npy": slots.getvalue()},
            faiss_version=faiss.__version__,
            spec=self._spec.to_json(),
            dim=self._dim,
            count=count,
            fingerprint=fingerprint,
            oplog_seq=oplog_seq,
            dead=dead,
        )

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
        """Load and verify an index written by :meth:`save`.

        Args:
            fingerprint: the encoder fingerprint the index must have been built with.
            dim: the dimension it must have.
            mmap: memory-map the FAISS file read-only (large read-only indexes).

        Raises:
            IndexCorrupted: a file is missing, truncated or altered, or the manifest
                disagrees with the files, the faiss version, ``fingerprint`` or ``dim``.
        """
        directory = Path(directory)
        manifest, files = verified_files(
            directory, faiss_version=faiss.__version__, fingerprint=fingerprint, dim=dim
        )
        if "index.faiss" not in files or "slots.npy" not in files:
            raise IndexCorrupted(f"{directory}: the manifest names no index or slots file")
        try:
            slot_ids = np.load(files["slots.npy"], allow_pickle=False).astype(np.int64)
            index = cls(IndexSpec.from_json(manifest.spec), manifest.dim, use_gpu=use_gpu)
            if files["index.faiss"].stat().st_size:
                flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
                index._cpu = faiss.read_index(str(files["index.faiss"]), flags)
        except (OSError, RuntimeError, ValueError, KeyError) as e:
            raise IndexCorrupted(f"{directory}: cannot read index: {e}") from e
        index._slot_ids = slot_ids
        live = np.flatnonzero(slot_ids >= 0)
        index._id_slot = dict(zip(slot_ids[live].tolist(), live.tolist(), strict=True))
        index._dead = set(manifest.dead)
        stored = int(index._cpu.ntotal) if index._cpu is not None else 0
        if len(index) != manifest.count or stored != manifest.count + len(index._dead):
            raise IndexCorrupted(
                f"{directory}: manifest says {manifest.count} vectors, files hold {len(index)} "
                f"live of {stored}"
            )
        index._sync_gpu()
        index._read_only = mmap and index._cpu is not None
        return index, manifest

    def _check_writable(self) -> None:
        if self._read_only:
            raise VectorIndexError("this index was loaded memory-mapped and is read-only")

    def _drop(self, keys: np.ndarray) -> int:
        slots = [self._id_slot.pop(k) for k in keys.tolist() if k in self._id_slot]
        if not slots:
            return 0
        slot_array = np.asarray(slots, dtype=np.int64)
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
                return finish_search(_empty, q, k, total=0)
            selector: Any = None
            total = len(self._id_slot)
            if allow is not None:
                wanted = np.asarray(allow, dtype=np.int64).reshape(-1).tolist()
                slots = np.fromiter(
                    (self._id_slot[i] for i in wanted if i in self._id_slot), dtype=np.int64
                )
                total = slots.shape[0]
                if self.kind != "flat" and total <= exact_below(len(self._id_slot)):
                    return self._search_subset(slots, q, k, predicate, min_score, offset)
                if self._gpu is not None:  # GPU indexes take no selector: post-filter
                    allowed = set(wanted)
                    predicate = _and(predicate, lambda ids: np.isin(ids, list(allowed)))
                    total = len(self._id_slot)
                else:
                    selector = faiss.IDSelectorBatch(slots)
                    fraction = total / max(1, len(self._id_slot))
                    params = widened(self._spec, params or SearchParams(), fraction)
            elif self._dead and self._gpu is not None:  # no selectors on GPU: skip the dead
                predicate = _and(predicate, lambda ids: np.ones(ids.shape[0], dtype=bool))
            elif self._dead:
                selector = self._live_selector()
            faiss_params = self._faiss_params(params or SearchParams(), selector)

            blas = (
                self.kind == "flat"
                and self._gpu is None
                and self._metric != "l2"
                and allow is None
                and q.shape[0] < SINGLE_THREAD_BELOW
            )

            def raw(qs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
                if blas:
                    labels, scores = self._blas_flat(qs, n)
                    ids = np.where(labels >= 0, self._slot_ids[labels], -1)
                    return ids, scores
                index = self._gpu if self._gpu is not None else self._cpu
                with omp_threads(qs.shape[0]):
                    if faiss_params is None:
                        distances, labels = index.search(qs, n)
                    else:
                        distances, labels = index.search(qs, n, params=faiss_params)
                ids = self._slot_ids[labels]
                missing = labels < 0  # FAISS pads short rows with -1
                if missing.any():
                    ids[missing] = -1
                return ids, -distances if self._metric == "l2" else distances

            result = finish_search(
                raw, q, k, total=total, predicate=predicate, min_score=min_score, offset=offset
            )
            if selector is not None and allow is not None and predicate is None:
                # the walk missed allowed points it should have found: score them exactly
                found = (result.ids >= 0).sum(axis=1)
                if min_score is None and found.min() < min(k, max(0, total - offset)):
                    return self._search_subset(slots, q, k, None, None, offset)
            return result

    def _blas_flat(self, qs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        total = int(self._cpu.ntotal)
        rows = faiss.rev_swig_ptr(self._cpu.get_xb(), total * self._dim)  # a view, no copy
        return blas_top_k(np.asarray(rows).reshape(total, self._dim), self._dead, qs, n)

    def _live_selector(self) -> Any:
        # Built once per set of tombstones, not per query; FAISS only reads selectors.
        selector: Any = self._dead_selector
        if selector is None:
            dead = faiss.IDSelectorBatch(np.fromiter(self._dead, dtype=np.int64))
            selector = faiss.IDSelectorNot(dead)
            selector.referenced = dead  # keep the inner selector alive
            self._dead_selector = selector
        return selector

    def _search_subset(
        self,
        slots: np.ndarray,
        queries: np.ndarray,
        k: int,
        predicate: Predicate | None,
        min_score: float | None,
        offset: int,
    ) -> SearchResult:
        # A selective filter starves a graph walk or a few IVF lists of candidates (the
        # allowed points may lie nowhere near the route), so score the allowed few exactly.
        vectors = (
            np.asarray(self._cpu.reconstruct_batch(slots), dtype=np.float32)
            if slots.size
            else np.zeros((0, self._dim), np.float32)
        )
        return search_exactly(
            self._slot_ids[slots],
            vectors,
            queries,
            k,
            self._metric,
            predicate=predicate,
            min_score=min_score,
            offset=offset,
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
            vectors = np.asarray(self._cpu.reconstruct_batch(live), dtype=np.float32)
            return self._slot_ids[live].copy(), vectors

    @property
    def lossless(self) -> bool:
        """Whether :meth:`snapshot` returns the vectors exactly as added (normalised)."""
        return self._spec.kind in ("flat", "hnsw", "ivf")


def _empty(queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    shape = (queries.shape[0], n)
    return np.full(shape, -1, np.int64), np.full(shape, -np.inf, np.float32)


def _and(first: Predicate | None, second: Predicate) -> Predicate:
    if first is None:
        return second
    return lambda ids: first(ids) & second(ids)
