"""Each collection's live index, kept consistent with SQL (the source of truth).

On open, the saved index is verified against its manifest and the encoder fingerprint, the
oplog written after its last applied sequence is replayed from SQL, and the result must hold
exactly the live rows; otherwise the index is rebuilt from the stored vectors. Which of the
three happened is logged and returned. Writes reach the index only after their SQL
transaction committed.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from latentspace.errors import IndexCorrupted
from latentspace.index import (
    FaissIndex,
    IndexSpec,
    ManagedIndex,
    estimate_recall,
    load_index,
    plan_index,
)
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow

__all__ = ["CollectionIndexes", "OpenReport"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenReport:
    """How a collection's index was brought up to date: loaded, replayed or rebuilt."""

    action: str
    replayed: int = 0
    reason: str = ""


@dataclass
class _Live:
    index: ManagedIndex
    applied_seq: int
    report: OpenReport
    lock: threading.Lock


class CollectionIndexes:
    """Opens, updates and saves the index of every collection under ``data_dir/indexes``."""

    def __init__(
        self,
        *,
        data_dir: Path,
        sessions: sessionmaker[Session],
        memory_budget: int | None = None,
        use_gpu: bool = False,
    ) -> None:
        self._root = Path(data_dir) / "indexes"
        self._sessions = sessions
        self._budget = memory_budget
        self._use_gpu = use_gpu
        self._live: dict[int, _Live] = {}
        self._lock = threading.Lock()

    def directory(self, collection: CollectionRow) -> Path:
        """Where the collection's index files live."""
        return self._root / str(collection.id)

    def writer_lock(self, collection: CollectionRow) -> threading.Lock:
        """The lock that serialises writes to one collection (SQL commit + index apply)."""
        return self._get(collection).lock

    def get(self, collection: CollectionRow) -> ManagedIndex:
        """The collection's live index, opened (and made consistent) on first use."""
        return self._get(collection).index

    def report(self, collection: CollectionRow) -> OpenReport:
        """What happened when the index was opened."""
        return self._get(collection).report

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
                row = repo.get_collection(session=session, name=collection.name)
                return [repo.live_vectors(session=session, collection=row)]

        return ManagedIndex(
            index,
            auto=collection.index_kind == "auto",
            memory_budget=self._budget,
            source=source,
            use_gpu=self._use_gpu,
        )

    def _open(self, collection: CollectionRow) -> _Live:
        with self._sessions() as session:
            sql_seq = repo.last_seq(session=session, collection=collection)
            live_count = repo.count_live(session=session, collection=collection)
            if sql_seq == 0 and not (self.directory(collection) / "manifest.json").exists():
                # A new collection: nothing saved and nothing written yet, nothing to warn of.
                index = FaissIndex(self._spec(collection, 0), collection.dim, use_gpu=self._use_gpu)
                report = OpenReport("created")
                return _Live(self._managed(collection, index), 0, report, threading.Lock())
            try:
                index, manifest = load_index(
                    self.directory(collection),
                    fingerprint=collection.fingerprint,
                    dim=collection.dim,
                    use_gpu=self._use_gpu,
                )
            except IndexCorrupted as e:
                return self._rebuild(collection, session, sql_seq, str(e))
            if manifest.oplog_seq > sql_seq:
                reason = f"index is at oplog {manifest.oplog_seq}, SQL only at {sql_seq}"
                return self._rebuild(collection, session, sql_seq, reason)
            tail = repo.oplog_after(session=session, collection=collection, seq=manifest.oplog_seq)
            self._replay(collection, session, index, {item_id for _, _, item_id in tail})
            if len(index) != live_count:
                reason = f"after replay the index holds {len(index)}, SQL {live_count} live items"
                return self._rebuild(collection, session, sql_seq, reason)
        action = "replayed" if tail else "loaded"
        report = OpenReport(action, replayed=len(tail))
        logger.info(
            "collection %s: index %s (%d oplog entries)", collection.name, action, len(tail)
        )
        return _Live(self._managed(collection, index), sql_seq, report, threading.Lock())

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
        if collection.index_kind == "auto":
            return plan_index(n, collection.dim, collection.metric, self._budget)  # type: ignore[arg-type]
        return IndexSpec(collection.index_kind, collection.metric, dict(collection.index_params))  # type: ignore[arg-type]

    def _rebuild(
        self, collection: CollectionRow, session: Session, sql_seq: int, reason: str
    ) -> _Live:
        logger.warning("collection %s: rebuilding index from SQL (%s)", collection.name, reason)
        ids, vectors = repo.live_vectors(session=session, collection=collection)
        index = FaissIndex(
            self._spec(collection, ids.shape[0]), collection.dim, use_gpu=self._use_gpu
        )
        if ids.size:
            index.add(ids, vectors)
        report = OpenReport("rebuilt", reason=reason)
        return _Live(self._managed(collection, index), sql_seq, report, threading.Lock())

    # -- writes and saving ---------------------------------------------------------------
    def apply(
        self,
        collection: CollectionRow,
        *,
        upserts: dict[int, np.ndarray],
        deletes: list[int],
        seq: int,
    ) -> None:
        """Apply committed changes up to oplog ``seq`` (caller holds the writer lock)."""
        live = self._get(collection)
        if deletes:
            live.index.remove(np.asarray(deletes, dtype=np.int64))
        if upserts:
            keys = np.fromiter(upserts, dtype=np.int64, count=len(upserts))
            live.index.add(keys, np.stack([upserts[k] for k in keys.tolist()]))
        live.applied_seq = max(live.applied_seq, seq)

    def save(self, collection: CollectionRow) -> None:
        """Write the index files and record the manifest in SQL (caller holds the writer lock)."""
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
            repo.put_manifest(
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

    def save_all(self, collections: list[CollectionRow]) -> None:
        """Save every open index (shutdown)."""
        for collection in collections:
            if collection.id in self._live:
                with self.writer_lock(collection):
                    self.save(collection)

    def drop(self, collection: CollectionRow) -> None:
        """Forget a deleted collection's index and remove its files."""
        with self._lock:
            self._live.pop(collection.id, None)
        shutil.rmtree(self.directory(collection), ignore_errors=True)
