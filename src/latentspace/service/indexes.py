"""Live indexes: each collection's vector index, kept consistent with SQL (the source of truth).

:class:`LiveIndexes` is the seam every use-case goes through: open, search, apply committed
writes, save, rebuild, stats. :class:`LocalIndexes` is the in-process implementation: one
FAISS index per collection in this process, saved under ``data_dir/indexes``. Replicas that
tail the SQL oplog and Ray-sharded search are further implementations of the same protocol.

On open, the saved index is verified against its manifest and the encoder fingerprint, the
oplog written after its last applied sequence is replayed from SQL, and the result must hold
exactly the live rows; otherwise the index is rebuilt from the stored vectors. Which of the
three happened is logged and returned. Writes reach the index only after their SQL
transaction committed, in the order of their oplog sequence (callers hold :meth:`writing`).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Unpack

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from latentspace.errors import IndexCorrupted, VectorIndexError
from latentspace.index import (
    FaissIndex,
    IndexSpec,
    ManagedIndex,
    SearchResult,
    estimate_recall,
    gpu_available,
    plan_index,
)
from latentspace.index.base import SearchOptions
from latentspace.index.batcher import MicroBatcher
from latentspace.settings import IndexSettings
from latentspace.store import oplog
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow
from latentspace.types import TimingHook, as_index_choice, as_metric

__all__ = ["CommittedWrite", "IndexStats", "LiveIndexes", "LocalIndexes", "OpenReport"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenReport:
    """How a collection's index was brought up to date: created, loaded, replayed or rebuilt."""

    action: str
    replayed: int = 0
    reason: str = ""


@dataclass(frozen=True)
class CommittedWrite:
    """Changes one SQL transaction committed, up to oplog sequence ``seq``."""

    seq: int
    upserts: dict[int, np.ndarray] = field(default_factory=dict)
    deletes: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class IndexStats:
    """What a live index is right now."""

    kind: str
    params: dict[str, Any]
    count: int
    applied_seq: int
    rebuilding: bool
    on_gpu: bool


class LiveIndexes(Protocol):
    """The live indexes of every collection, as the use-cases see them."""

    def open(self, collection: CollectionRow) -> OpenReport:
        """Bring the collection's index up to date with SQL (once); how that went."""

    def writing(self, collection: CollectionRow) -> AbstractContextManager[None]:
        """Held around a write's SQL commit and its :meth:`apply`, so they keep seq order."""

    def apply(self, collection: CollectionRow, write: CommittedWrite) -> None:
        """Apply a committed write (the caller holds :meth:`writing`)."""

    def search(
        self,
        collection: CollectionRow,
        queries: np.ndarray,
        k: int,
        **options: Unpack[SearchOptions],
    ) -> SearchResult:
        """The ``k`` nearest live item ids of each query (see ``VectorIndex.search``)."""

    def save(self, collection: CollectionRow) -> None:
        """Persist the index and record its manifest (with measured recall) in SQL."""

    def rebuild(self, collection: CollectionRow) -> OpenReport:
        """Rebuild the index from the vectors in SQL, in the kind it should be, and save it."""

    def stats(self, collection: CollectionRow) -> IndexStats:
        """Kind, parameters, size and state of the live index."""

    def drop(self, collection: CollectionRow) -> None:
        """Forget a deleted collection's index and remove its files."""

    def close(self, collections: list[CollectionRow]) -> None:
        """Save every open index (shutdown)."""


@dataclass
class _Live:
    index: ManagedIndex
    applied_seq: int
    report: OpenReport


def resolve_gpu(settings: IndexSettings) -> bool:
    """Whether indexes run on the GPU under ``settings.gpu``.

    Raises:
        VectorIndexError: ``gpu = "on"`` and this faiss build sees no GPU.
    """
    if settings.gpu == "off":
        return False
    available = gpu_available()
    if settings.gpu == "on" and not available:
        raise VectorIndexError(
            "LATENTSPACE_INDEX__GPU=on, but this faiss build sees no GPU (install faiss-gpu "
            "and check the driver, or set LATENTSPACE_INDEX__GPU=auto)"
        )
    return available


class LocalIndexes:
    """The in-process live indexes, under ``data_dir/indexes/<collection id>``.

    Args:
        data_dir: the data directory.
        sessions: the SQL session factory (vectors and the oplog are read from it).
        settings: memory budget, GPU mode, exact limit and compaction ratio.
        micro_batch: run concurrent unfiltered single-vector searches as one FAISS call.
        on_timing: called with ``("search", kind, seconds)`` after each search.

    Raises:
        VectorIndexError: the settings ask for a GPU that is not there.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        sessions: sessionmaker[Session],
        settings: IndexSettings,
        micro_batch: bool = True,
        on_timing: TimingHook | None = None,
    ) -> None:
        self._root = Path(data_dir) / "indexes"
        self._sessions = sessions
        self._settings = settings
        self._use_gpu = resolve_gpu(settings)
        self._micro_batch = micro_batch
        self._on_timing = on_timing
        self._live: dict[int, _Live] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._batchers: dict[int, MicroBatcher] = {}
        self._lock = threading.Lock()

    @property
    def use_gpu(self) -> bool:
        """Whether new indexes are placed on the GPU (flat and IVF kinds)."""
        return self._use_gpu

    def directory(self, collection: CollectionRow) -> Path:
        """Where the collection's index files live."""
        return self._root / str(collection.id)

    @contextmanager
    def writing(self, collection: CollectionRow) -> Iterator[None]:
        """Serialise one collection's writes (SQL commit + index apply)."""
        with self._lock:
            lock = self._locks.setdefault(collection.id, threading.Lock())
        with lock:
            yield

    def open(self, collection: CollectionRow) -> OpenReport:
        """What happened when the index was opened (opening it now if needed)."""
        return self._get(collection).report

    def index(self, collection: CollectionRow) -> ManagedIndex:
        """The collection's live index (diagnostics and tests)."""
        return self._get(collection).index

    def _get(self, collection: CollectionRow) -> _Live:
        with self._lock:
            live = self._live.get(collection.id)
            if live is None:
                live = self._open(collection)
                self._live[collection.id] = live
            return live

    # -- opening -------------------------------------------------------------------------
    def _managed(self, collection: CollectionRow, index: FaissIndex) -> ManagedIndex:
        def source() -> list[tuple[np.ndarray, np.ndarray]]:
            with self._sessions() as session:
                return [repo.live_vectors(session=session, collection=collection)]

        return ManagedIndex(
            index,
            auto=collection.index_kind == "auto",
            memory_budget=self._settings.memory_budget,
            compact_ratio=self._settings.compact_ratio,
            source=source,
            use_gpu=self._use_gpu,
            exact_limit=self._settings.exact_limit,
        )

    def _open(self, collection: CollectionRow) -> _Live:
        with self._sessions() as session:
            sql_seq = oplog.last_seq(session=session, collection=collection)
            live_count = repo.count_live(session=session, collection=collection)
            if sql_seq == 0 and not (self.directory(collection) / "manifest.json").exists():
                # A new collection: nothing saved and nothing written yet, nothing to warn of.
                index = FaissIndex(self._spec(collection, 0), collection.dim, use_gpu=self._use_gpu)
                return _Live(self._managed(collection, index), 0, OpenReport("created"))
            try:
                index, manifest = FaissIndex.load(
                    self.directory(collection),
                    fingerprint=collection.fingerprint,
                    dim=collection.dim,
                    use_gpu=self._use_gpu,
                )
            except IndexCorrupted as e:
                return self._rebuilt(collection, session, sql_seq, str(e))
            if manifest.oplog_seq > sql_seq:
                reason = f"index is at oplog {manifest.oplog_seq}, SQL only at {sql_seq}"
                return self._rebuilt(collection, session, sql_seq, reason)
            tail = oplog.after(session=session, collection=collection, seq=manifest.oplog_seq)
            self._replay(collection, session, index, {item_id for _, _, item_id in tail})
            if len(index) != live_count:
                reason = f"after replay the index holds {len(index)}, SQL {live_count} live items"
                return self._rebuilt(collection, session, sql_seq, reason)
        action = "replayed" if tail else "loaded"
        logger.info(
            "collection %s: index %s (%d oplog entries)", collection.name, action, len(tail)
        )
        report = OpenReport(action, replayed=len(tail))
        return _Live(self._managed(collection, index), sql_seq, report)

    def _replay(
        self, collection: CollectionRow, session: Session, index: FaissIndex, touched: set[int]
    ) -> None:
        if not touched:
            return
        ids = sorted(touched)
        live = repo.items_by_ids(session=session, item_ids=ids)
        vectors = repo.vectors_of(session=session, item_ids=list(live), dim=collection.dim)
        gone = np.array([i for i in ids if i not in vectors], dtype=np.int64)
        if gone.size:
            index.remove(gone)
        if vectors:
            keys = np.fromiter(vectors, dtype=np.int64, count=len(vectors))
            index.add(keys, np.stack([vectors[k] for k in keys.tolist()]))

    def _spec(self, collection: CollectionRow, n: int) -> IndexSpec:
        metric = as_metric(collection.metric)
        choice = as_index_choice(collection.index_kind)
        if choice == "auto":
            return plan_index(
                n,
                collection.dim,
                metric,
                self._settings.memory_budget,
                exact_limit=self._settings.exact_limit,
            )
        return IndexSpec(choice, metric, dict(collection.index_params))

    def _build(self, collection: CollectionRow, session: Session) -> FaissIndex:
        ids, vectors = repo.live_vectors(session=session, collection=collection)
        index = FaissIndex(
            self._spec(collection, ids.shape[0]), collection.dim, use_gpu=self._use_gpu
        )
        if ids.size:
            index.add(ids, vectors)
        return index

    def _rebuilt(
        self, collection: CollectionRow, session: Session, sql_seq: int, reason: str
    ) -> _Live:
        logger.warning("collection %s: rebuilding index from SQL (%s)", collection.name, reason)
        index = self._build(collection, session)
        report = OpenReport("rebuilt", reason=reason)
        return _Live(self._managed(collection, index), sql_seq, report)

    # -- writes, rebuilds and saving -----------------------------------------------------
    def apply(self, collection: CollectionRow, write: CommittedWrite) -> None:
        """Apply committed changes up to oplog ``write.seq`` (caller holds :meth:`writing`)."""
        live = self._get(collection)
        if write.deletes:
            live.index.remove(np.asarray(write.deletes, dtype=np.int64))
        if write.upserts:
            keys = np.fromiter(write.upserts, dtype=np.int64, count=len(write.upserts))
            live.index.add(keys, np.stack([write.upserts[k] for k in keys.tolist()]))
        live.applied_seq = max(live.applied_seq, write.seq)

    def rebuild(self, collection: CollectionRow) -> OpenReport:
        """Build a fresh index from SQL and swap it in; searches use the old one meanwhile."""
        with self.writing(collection):
            self._get(collection).index.wait()
            with self._sessions() as session:
                sql_seq = oplog.last_seq(session=session, collection=collection)
                index = self._build(collection, session)
            report = OpenReport("rebuilt", reason="requested")
            with self._lock:
                self._live[collection.id] = _Live(self._managed(collection, index), sql_seq, report)
            logger.info(
                "collection %s: index rebuilt from SQL on request (%s, %d vectors)",
                collection.name,
                index.kind,
                len(index),
            )
            self._save(collection)
        return report

    def save(self, collection: CollectionRow) -> None:
        """Write the index files and record the manifest in SQL."""
        with self.writing(collection):
            self._save(collection)

    def _save(self, collection: CollectionRow) -> None:
        live = self._get(collection)
        live.index.wait()
        index = live.index.current
        recall = self.measure_recall(collection)
        index.save(
            self.directory(collection),
            fingerprint=collection.fingerprint,
            oplog_seq=live.applied_seq,
        )
        with self._sessions.begin() as session:
            oplog.put_manifest(
                session=session,
                collection=collection,
                kind=index.kind,
                params=dict(index.spec.params),
                count=len(index),
                oplog_seq=live.applied_seq,
                recall_at_10=recall,
            )

    def measure_recall(self, collection: CollectionRow, *, sample: int = 100) -> float | None:
        """recall@10 of the live index against exact search over its own vectors.

        Exact kinds report 1.0 without measuring. Lossy kinds (IVF-PQ) are measured against
        the stored vectors from SQL; ``None`` for an empty index.
        """
        index = self._get(collection).index.current
        if len(index) == 0:
            return None
        if index.kind == "flat":
            return 1.0
        if index.lossless:
            ids, vectors = index.snapshot()
        else:
            with self._sessions() as session:
                ids, vectors = repo.live_vectors(session=session, collection=collection)
        return estimate_recall(index, ids, vectors, k=10, sample=sample)

    def close(self, collections: list[CollectionRow]) -> None:
        """Save every open index (shutdown)."""
        for collection in collections:
            if collection.id in self._live:
                self.save(collection)

    def drop(self, collection: CollectionRow) -> None:
        """Forget a deleted collection's index and remove its files."""
        with self._lock:
            self._live.pop(collection.id, None)
            self._batchers.pop(collection.id, None)
        shutil.rmtree(self.directory(collection), ignore_errors=True)

    # -- reads ---------------------------------------------------------------------------
    def stats(self, collection: CollectionRow) -> IndexStats:
        """Kind, parameters, size and state of the live index."""
        live = self._get(collection)
        current = live.index.current
        return IndexStats(
            kind=current.kind,
            params=dict(current.spec.params),
            count=len(current),
            applied_seq=live.applied_seq,
            rebuilding=live.index.rebuilding,
            on_gpu=current.on_gpu,
        )

    def search(
        self,
        collection: CollectionRow,
        queries: np.ndarray,
        k: int,
        **options: Unpack[SearchOptions],
    ) -> SearchResult:
        """The ``k`` nearest live ids of each query; lone plain queries are micro-batched."""
        index = self._get(collection).index
        started = time.perf_counter()
        # micro-batched queries share one search: only those without filter, knobs, threshold
        plain = all(options.get(key) is None for key in ("params", "allow", "predicate"))
        plain = plain and options.get("min_score") is None and not options.get("offset")
        if self._micro_batch and plain and queries.shape[0] == 1:
            ids, scores = self._batcher(collection).search(queries[0], k)
            result = SearchResult(ids[None, :], scores[None, :])
        else:
            result = index.search(queries, k, **options)
        if self._on_timing is not None:
            self._on_timing("search", index.current.kind, time.perf_counter() - started)
        return result

    def _batcher(self, collection: CollectionRow) -> MicroBatcher:
        with self._lock:
            batcher = self._batchers.get(collection.id)
            if batcher is None:

                def search_batch(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
                    result = self._get(collection).index.search(queries, k)
                    return result.ids, result.scores

                batcher = MicroBatcher(search_batch)
                self._batchers[collection.id] = batcher
            return batcher
