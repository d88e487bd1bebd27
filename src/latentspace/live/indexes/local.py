"""The in-process live indexes: one FAISS index per collection, in this process."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from latentspace.errors import Conflict, IndexCorrupted, Unavailable
from latentspace.index import FaissIndex, IndexSpec, ManagedIndex, SearchResult
from latentspace.index.base import SearchOptions
from latentspace.index.batcher import MicroBatcher
from latentspace.index.cost import ExactLimits
from latentspace.index.locks import KeyedLocks
from latentspace.index.managed import fill
from latentspace.index.spec import training_minimum
from latentspace.live.commit import Commit
from latentspace.live.indexes import budget, setup
from latentspace.live.indexes.base import IndexStats, OpenReport
from latentspace.live.indexes.tail import Tail, replay
from latentspace.settings import IndexSettings
from latentspace.store import oplog
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow
from latentspace.types import TimingHook

__all__ = ["LocalIndexes"]

logger = logging.getLogger(__name__)


@dataclass
class _Live:
    index: ManagedIndex
    applied_seq: int
    report: OpenReport
    fingerprint: str  # the model space its vectors are in (a migration changes it)
    # (oplog seq, index) the files hold: a save with neither changed since writes nothing
    saved: tuple[int, FaissIndex] | None = None


class LocalIndexes:
    """The in-process live indexes, under ``data_dir/indexes/<collection id>``.

    ``sessions`` reads vectors and the oplog; ``settings``: memory budget, GPU, exact limit,
    compaction. ``micro_batch`` runs concurrent plain single-vector searches as one FAISS
    call; ``on_timing(("search", kind, seconds))`` follows each search; ``on_changed`` gets
    the ids of items other processes changed once the index holds the change. A replica
    sharing the data directory sets ``writes_files`` false: it only reads the files.

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
        on_changed: Callable[[CollectionRow, frozenset[int]], None] | None = None,
    ) -> None:
        self._root = Path(data_dir) / "indexes"
        self.writes_files = True
        self._on_changed = on_changed
        self._sessions = sessions
        self._settings = settings
        self._use_gpu = setup.resolve_gpu(settings)
        self._micro_batch = micro_batch
        self._on_timing = on_timing
        self._live: dict[int, _Live] = {}
        self._locks = KeyedLocks()
        self._batchers: dict[int, MicroBatcher] = {}
        self._failed: dict[int, str] = {}
        self._lock = threading.RLock()
        self._exact_limits = ExactLimits(settings.exact_latency_ms, settings.exact_limit)

    @property
    def use_gpu(self) -> bool:
        """Whether new indexes are placed on the GPU (flat and IVF kinds)."""
        return self._use_gpu

    def exact_limit(self, dim: int) -> int:
        """Vectors of ``dim`` below which ``auto`` collections search exactly."""
        return self._exact_limits.limit(dim)

    def directory(self, collection: CollectionRow) -> Path:
        """Where the collection's index files live."""
        return self._root / str(collection.id)

    def _usable_directory(self, collection: CollectionRow) -> None:
        if self.writes_files:  # a replica never moves the writer's files
            setup.set_aside_unusable(self.directory(collection), collection.name)

    @contextmanager
    def writing(self, collection: CollectionRow) -> Iterator[None]:
        """Serialise one collection's writes (SQL commit + index apply)."""
        with self._locks.of(collection.id):
            yield

    def ready(self, collection: CollectionRow) -> bool:
        """Whether a search would run at once (see :meth:`LiveIndexes.ready`)."""
        return collection.id in self._live and not self._locks.held(collection.id)

    def open(self, collection: CollectionRow) -> OpenReport:
        """What happened when the index was opened (opening it now if needed)."""
        return self._get(collection).report

    def index(self, collection: CollectionRow) -> ManagedIndex:
        """The collection's live index (diagnostics and tests)."""
        return self._get(collection).index

    def _get(self, collection: CollectionRow) -> _Live:
        with self._lock:
            live = self._in_space(collection, self._live.get(collection.id))
            if live is None:
                failed = self._failed.get(collection.id)
                if failed is not None:
                    raise Unavailable(f"collection {collection.name!r} cannot serve: {failed}")
                try:
                    live = self._open(collection)
                except Exception as e:  # one collection's failure never stops the others
                    live = self._exact(collection, f"opening its index failed: {e!r}")
                self._live[collection.id] = live
            return live

    def _in_space(self, collection: CollectionRow, live: _Live | None) -> _Live | None:
        # The live index if its vectors are in the collection's space. Otherwise one side
        # is stale (a migration moved the collection to another model): SQL says which.
        # A stale index is dropped (None: open it again); a stale caller is refused.
        if live is None or live.fingerprint == collection.fingerprint:
            return live
        with self._sessions() as session:
            current = repo.fingerprint_of(session=session, collection_id=collection.id)
        if current != collection.fingerprint:
            raise Conflict(
                f"collection {collection.name!r} moved to another model while this request "
                "ran; retry it"
            )
        logger.info("collection %s: moved to another model; its index is reopened", collection.name)
        self._forget(collection.id)
        return None

    def _exact(self, collection: CollectionRow, reason: str) -> _Live:
        # The fallback that needs nothing but SQL: exact search over the stored vectors.
        # The requested kind is built later, in the background, once it can be.
        logger.error("collection %s: serving exact search from SQL (%s)", collection.name, reason)
        try:
            index, sql_seq = setup.exact_from_sql(self._sessions, collection)
        except Exception as e:
            self._failed[collection.id] = f"{reason}; exact search from SQL failed too: {e!r}"
            logger.exception("collection %s cannot serve", collection.name)
            raise Unavailable(
                f"collection {collection.name!r} cannot serve: {self._failed[collection.id]}"
            ) from e
        report = OpenReport("rebuilt", reason=f"exact search from SQL: {reason}")
        return _Live(self._managed(collection, index), sql_seq, report, collection.fingerprint)

    # -- opening -------------------------------------------------------------------------
    def _managed(self, collection: CollectionRow, index: FaissIndex) -> ManagedIndex:
        requested = setup.requested_spec(collection)
        return ManagedIndex(
            index,
            auto=requested is None,
            requested=requested,
            memory_budget=budget.total_budget(self._settings),
            compact_ratio=self._settings.compact_ratio,
            source=setup.vector_batches(self._sessions, collection),
            use_gpu=self._use_gpu,
            exact_limit=self.exact_limit(collection.dim) if requested is None else None,
            codes=setup.codes_of(collection),
            rows=setup.row_source(self._sessions, collection),
        )

    def _open(self, collection: CollectionRow) -> _Live:
        self._usable_directory(collection)
        with self._sessions() as session:
            sql_seq = oplog.last_seq(session=session, collection=collection)
            live_count = repo.count_live(session=session, collection=collection)
            if sql_seq == 0 and not (self.directory(collection) / "manifest.json").exists():
                # A new collection: nothing saved and nothing written yet, nothing to warn of.
                index = FaissIndex(self._spec(collection, 0), collection.dim, use_gpu=self._use_gpu)
                return _Live(
                    self._managed(collection, index),
                    0,
                    OpenReport("created"),
                    collection.fingerprint,
                )
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
            replay(collection, session, index, Tail.of(tail).vectors)
            if len(index) != live_count:
                reason = f"after replay the index holds {len(index)}, SQL {live_count} live items"
                return self._rebuilt(collection, session, sql_seq, reason)
        action = "replayed" if tail else "loaded"
        logger.info(
            "collection %s: index %s (%d oplog entries)", collection.name, action, len(tail)
        )
        report = OpenReport(action, replayed=len(tail))
        live = _Live(self._managed(collection, index), sql_seq, report, collection.fingerprint)
        if not tail:
            live.saved = (manifest.oplog_seq, index)
        return live

    def _spec(self, collection: CollectionRow, n: int) -> IndexSpec:
        room, limit = budget.total_budget(self._settings), self.exact_limit(collection.dim)
        return setup.planned_spec(collection, n, memory_budget=room, exact_limit=limit)

    def _build(self, collection: CollectionRow, session: Session) -> FaissIndex:
        # From SQL, batch by batch: the vectors are never all in memory beside the index.
        count = repo.count_live(session=session, collection=collection)
        spec = self._spec(collection, count)
        index = FaissIndex(spec, collection.dim, use_gpu=self._use_gpu)
        index.rows_from(setup.row_source(self._sessions, collection))
        batches = setup.vector_batches(self._sessions, collection)()
        fill(index, batches, training_minimum(spec), count)
        return index

    def _rebuilt(
        self, collection: CollectionRow, session: Session, sql_seq: int, reason: str
    ) -> _Live:
        logger.warning("collection %s: rebuilding index from SQL (%s)", collection.name, reason)
        index = self._build(collection, session)
        report = OpenReport("rebuilt", reason=reason)
        return _Live(self._managed(collection, index), sql_seq, report, collection.fingerprint)

    # -- writes, rebuilds and saving -----------------------------------------------------
    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Apply committed changes up to oplog ``commit.seq`` (caller holds :meth:`writing`).

        Rows before ``commit.seq`` that another process committed since the index last read
        the oplog are replayed from SQL too, so the index never skips a foreign commit.
        """
        if not (commit.seq or commit.upserts or commit.deletes):
            return  # no vector and no oplog position (an auto-tag's metadata)
        live = self._get(collection)
        before = live.applied_seq
        try:
            if commit.deletes:
                live.index.remove(np.asarray(commit.deletes, dtype=np.int64))
            if commit.upserts:
                keys = np.fromiter(commit.upserts, dtype=np.int64, count=len(commit.upserts))
                live.index.add(keys, np.stack([commit.upserts[k] for k in keys.tolist()]))
            if commit.seq > before:
                mine = [*commit.upserts, *commit.deletes]
                self._follow(collection, live, before, commit.seq, mine)
        except Exception as e:  # the rows are committed: the index must absorb them anyway
            fresh = self._exact(collection, f"applying oplog {commit.seq} failed: {e!r}")
            with self._lock:
                self._live[collection.id] = live = fresh
        live.applied_seq = max(live.applied_seq, commit.seq)

    def catch_up(self, collection: CollectionRow, *, timeout: float | None = None) -> int | None:
        """Apply what other processes committed since the index last read the oplog; the
        number of oplog rows read (0 when the index is not open: opening reads SQL), or
        None when a write held the collection for longer than ``timeout`` seconds."""
        lock = self._locks.of(collection.id)
        if not lock.acquire(timeout=-1 if timeout is None else timeout):
            return None
        try:
            with self._lock:
                live = self._in_space(collection, self._live.get(collection.id))
            if live is None:
                return 0
            return self._follow(collection, live, live.applied_seq, None, [])
        finally:
            lock.release()

    def _follow(
        self, collection: CollectionRow, live: _Live, after: int, upto: int | None, mine: list[int]
    ) -> int:
        # The oplog rows in (after, upto] that are not the caller's own write, replayed.
        with self._sessions() as session:
            rows = oplog.after(session=session, collection=collection, seq=after, upto=upto)
            tail = Tail.of(rows, skip=mine)
            replay(collection, session, live.index, tail.vectors)
        live.applied_seq = max(live.applied_seq, tail.last)
        if tail.touched and self._on_changed is not None:
            self._on_changed(collection, tail.touched)
        return len(rows)

    def applied_seq(self, collection: CollectionRow) -> int | None:
        """The newest oplog sequence the open index holds; None when it is not open."""
        live = self._live.get(collection.id)
        return None if live is None else live.applied_seq

    def open_ids(self) -> list[int]:
        """Ids of the collections whose index is open in this process."""
        with self._lock:
            return list(self._live)

    def rebuild(self, collection: CollectionRow) -> OpenReport:
        """Build a fresh index from SQL and swap it in; searches use the old one meanwhile."""
        with self.writing(collection):
            self._get(collection).index.wait()
            with self._sessions() as session:
                sql_seq = oplog.last_seq(session=session, collection=collection)
                index = self._build(collection, session)
            report = OpenReport("rebuilt", reason="requested")
            live = _Live(self._managed(collection, index), sql_seq, report, collection.fingerprint)
            with self._lock:
                self._live[collection.id] = live
            logger.info(
                "collection %s: index rebuilt from SQL on request (%s, %d vectors)",
                collection.name,
                index.kind,
                len(index),
            )
            self._save(collection)
        return report

    def retune(self, collection: CollectionRow) -> None:
        """Build what the new settings ask for in the background; the old index serves."""
        live = self._live.get(collection.id)
        if live is not None:
            live.index.request(setup.requested_spec(collection), setup.codes_of(collection))

    def check_room(self, collection: CollectionRow, adding: int) -> None:
        """Refuse (before it is written) a write the memory budget cannot hold."""
        held = [(i, live.index.current) for i, live in list(self._live.items())]
        others = sum(index.memory_bytes() for i, index in held if i != collection.id)
        room = budget.total_budget(self._settings)
        budget.check_room(
            self._get(collection).index, collection, adding, others=others, budget=room
        )

    def save(self, collection: CollectionRow) -> None:
        """Write the index files and record the manifest in SQL."""
        with self.writing(collection):
            self._save(collection)

    def _save(self, collection: CollectionRow) -> None:
        if not self.writes_files:
            return  # a replica: the process holding the data directory saves
        live = self._get(collection)
        live.index.wait()
        index = live.index.current
        if live.saved is not None and live.saved == (live.applied_seq, index):
            return  # the files already hold exactly this (after reads alone, a second flush)
        recall = setup.measured_recall(index, self._sessions, collection)
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
        live.saved = (live.applied_seq, index)

    def close(self, collections: list[CollectionRow]) -> None:
        """Save every open index (shutdown)."""
        for collection in collections:
            if collection.id in self._live:
                self.save(collection)

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        """Forget a deleted collection's index and (when ``files``) remove its files."""
        self.remodelled(collection, files=files)
        self._locks.forget(collection.id)

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """Drop the index of the old space (its files too when ``files``)."""
        self._forget(collection.id)
        if files:
            shutil.rmtree(self.directory(collection), ignore_errors=True)

    def _forget(self, collection_id: int) -> None:
        with self._lock:
            self._live.pop(collection_id, None)
            self._batchers.pop(collection_id, None)
            self._failed.pop(collection_id, None)

    # -- reads ---------------------------------------------------------------------------
    def stats(self, collection: CollectionRow) -> IndexStats:
        """Kind, parameters, size and state of the live index."""
        live = self._get(collection)
        current = live.index.current
        return IndexStats(
            kind=current.kind,
            params=dict(current.spec.params),
            count=len(current),
            quantization=current.quantization,
            bytes=current.memory_bytes(),
            applied_seq=live.applied_seq,
            rebuilding=live.index.rebuilding,
            on_gpu=current.on_gpu,
            exact_limit=live.index.exact_limit,
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
        def search_batch(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            result = self._get(collection).index.search(queries, k)
            return result.ids, result.scores

        with self._lock:
            return self._batchers.setdefault(collection.id, MicroBatcher(search_batch))
