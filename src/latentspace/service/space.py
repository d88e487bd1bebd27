"""The core of the service: collections, writes and vector search over one database.

:class:`LatentSpace` owns the database engine, the encoders and every collection's index.
A write is one
SQL transaction (items + vectors + oplog), committed, then applied to the index under the
collection's writer lock; a search asks SQL for the filter's ids, FAISS for the neighbours,
and SQL again for the hits' metadata, dropping anything no longer live.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine

from latentspace import migrations
from latentspace.embedder import Encoder
from latentspace.errors import InvalidInput, LatentspaceError, StoreError
from latentspace.index import KINDS, METRICS, SearchParams
from latentspace.index.algebra import as_vector
from latentspace.index.batcher import MicroBatcher
from latentspace.indexes import CollectionIndexes, OpenReport
from latentspace.service.encoders import EncoderFactory, EncoderPool, TimingHook
from latentspace.settings import Settings
from latentspace.store import repository as repo
from latentspace.store.engine import make_engine, make_session_factory
from latentspace.store.filters import matches
from latentspace.store.repository import ItemInput, UpsertOutcome
from latentspace.store.tables import CollectionRow, ItemRow

__all__ = ["ALLOW_LIST_LIMIT", "CollectionStats", "Hit", "LatentSpace", "raw_vectors_fingerprint"]

logger = logging.getLogger(__name__)

# Filters matching at most this many items become an id allow-list inside FAISS; larger
# ones are applied after an oversampled search.
ALLOW_LIST_LIMIT = 50_000


def raw_vectors_fingerprint(dim: int) -> str:
    """The fingerprint of a bring-your-own-vectors collection of ``dim``."""
    return hashlib.sha256(f"latentspace:raw-vectors:{dim}".encode()).hexdigest()


@dataclass(frozen=True)
class Hit:
    """One search result."""

    id: str
    score: float
    metadata: dict[str, Any]
    text: str | None
    uri: str | None
    document_id: str | None
    item_id: int
    sha256: str = ""


@dataclass(frozen=True)
class CollectionStats:
    """What ``GET /v1/collections/{name}`` reports."""

    name: str
    model: str | None
    dim: int
    metric: str
    fingerprint: str
    count: int
    index_requested: str
    index_kind: str
    index_params: dict[str, Any]
    recall_at_10: float | None
    created_at: str


class LatentSpace:
    """Collections, items and search over one database and one data directory.

    Args:
        settings: everything configurable.
        engine: an engine to use instead of one made from ``settings``.
        encoder_factory: builds an encoder from a spec (tests inject fakes); default the
            registry's ``create_encoder``.
        on_timing: called with ``(what, label, seconds)`` after each encode and search.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        encoder_factory: EncoderFactory | None = None,
        on_timing: TimingHook | None = None,
    ) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._url = settings.resolved_database_url()
        self.engine = engine or make_engine(self._url)
        self.sessions = make_session_factory(self.engine)
        self.indexes = CollectionIndexes(data_dir=settings.data_dir, sessions=self.sessions)
        self.encoders = EncoderPool(settings.encoder, factory=encoder_factory, on_timing=on_timing)
        self._batchers: dict[int, MicroBatcher] = {}
        self._batchers_lock = threading.Lock()
        self._collections: dict[str, CollectionRow] = {}

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        engine: Engine | None = None,
        encoder_factory: EncoderFactory | None = None,
        on_timing: TimingHook | None = None,
    ) -> LatentSpace:
        """Upgrade the database (if ``auto_migrate``) and bring every index up to date.

        Raises:
            StoreError: the schema is not at the newest revision and may not be upgraded.
        """
        space = cls(settings, engine=engine, encoder_factory=encoder_factory, on_timing=on_timing)
        if settings.auto_migrate:
            migrations.upgrade(space._url, engine=space.engine)
        elif migrations.current_revision(space.engine) != migrations.head_revision():
            raise StoreError(
                "the database schema is not up to date; run `latentspace db upgrade` "
                "or set LATENTSPACE_AUTO_MIGRATE=true"
            )
        for name, report in space.verify().items():
            logger.info("collection %s: %s", name, report)
        return space

    def verify(self) -> dict[str, OpenReport]:
        """Open every collection's index (verify, replay or rebuild); what each needed."""
        with self.sessions() as session:
            collections = repo.list_collections(session=session)
        return {c.name: self.indexes.report(c) for c in collections}

    def close(self) -> None:
        """Save every open index and release the database."""
        with self.sessions() as session:
            collections = repo.list_collections(session=session)
        self.indexes.save_all(collections)
        self.engine.dispose()

    # -- collections ---------------------------------------------------------------------
    def collection(self, name: str) -> CollectionRow:
        """The collection row (raises NotFound).

        Rows never change after creation, so they are cached; deleting a collection
        through this object forgets it. (One process owns a data directory's indexes.)
        """
        row = self._collections.get(name)
        if row is None:
            with self.sessions() as session:
                row = repo.get_collection(session=session, name=name)
            self._collections[name] = row
        return row

    def list_collections(self) -> list[CollectionRow]:
        """Every collection, by name."""
        with self.sessions() as session:
            return repo.list_collections(session=session)

    def stats(self, name: str) -> CollectionStats:
        """Count, dim, model, fingerprint, live index kind and its measured recall@10."""
        with self.sessions() as session:
            row = repo.get_collection(session=session, name=name)
            count = repo.count_live(session=session, collection=row)
            manifest = repo.get_manifest(session=session, collection=row)
        current = self.indexes.get(row).current
        recall = 1.0 if current.kind == "flat" else None
        if manifest is not None and manifest.kind == current.kind and recall is None:
            recall = manifest.recall_at_10
        return CollectionStats(
            name=row.name,
            model=row.model,
            dim=row.dim,
            metric=row.metric,
            fingerprint=row.fingerprint,
            count=count,
            index_requested=row.index_kind,
            index_kind=current.kind,
            index_params=dict(current.spec.params),
            recall_at_10=recall,
            created_at=row.created_at.isoformat(),
        )

    def warm_encoders(self) -> dict[str, str]:
        """Load every collection's encoder now, so first queries do not pay for it.

        Returns the specs that failed to load and why (they are logged, not raised: the
        other collections can still serve, and that collection's requests say why not).
        """
        failed = {}
        for spec, fingerprint in {(c.model, c.fingerprint) for c in self.list_collections()}:
            if spec is None:
                continue
            try:
                self.encoders.checked(spec, fingerprint)
            except LatentspaceError as e:
                logger.error("model %s of a collection cannot be loaded: %s", spec, e)
                failed[spec] = str(e)
        return failed

    def encoder_for(self, collection: CollectionRow) -> Encoder | None:
        """The collection's encoder (checked against its fingerprint); None for raw vectors."""
        if collection.model is None:
            return None
        return self.encoders.checked(collection.model, collection.fingerprint)

    def create_collection(
        self,
        name: str,
        *,
        dim: int | None = None,
        model: str | None = None,
        fingerprint: str | None = None,
        metric: str = "cosine",
        index: str = "auto",
        index_params: dict[str, Any] | None = None,
    ) -> CollectionRow:
        """Create a collection of ``model``'s vectors, or of raw vectors of ``dim``.

        Raises:
            InvalidInput: unknown metric or index kind, no model and no dim, or a dim that
                is not the model's.
            Conflict: the name is taken.
            EncoderError: the model cannot be loaded.
        """
        if model is not None:
            encoder = self.encoders.get(model)
            if dim is not None and dim != encoder.dim:
                raise InvalidInput(f"model {model!r} makes {encoder.dim}-d vectors, not {dim}")
            dim, fingerprint = encoder.dim, fingerprint or encoder.fingerprint
        if dim is None:
            raise InvalidInput("a collection needs a model, or a dim for raw vectors")
        if metric not in METRICS:
            raise InvalidInput(f"unknown metric {metric!r}; use one of {list(METRICS)}")
        if index != "auto" and index not in KINDS:
            raise InvalidInput(f"unknown index kind {index!r}; use auto or one of {list(KINDS)}")
        with self.sessions.begin() as session:
            return repo.create_collection(
                session=session,
                name=name,
                model=model,
                dim=dim,
                fingerprint=fingerprint or raw_vectors_fingerprint(dim),
                metric=metric,
                index_kind=index,
                index_params=index_params,
            )

    def delete_collection(self, name: str) -> None:
        """Delete a collection, its items and its index files."""
        self._collections.pop(name, None)
        with self.sessions.begin() as session:
            row = repo.delete_collection(session=session, name=name)
        self._collections.pop(name, None)
        self.indexes.drop(row)
        with self._batchers_lock:
            self._batchers.pop(row.id, None)

    def count(self, name: str) -> int:
        """Live items in a collection."""
        with self.sessions() as session:
            row = repo.get_collection(session=session, name=name)
            return repo.count_live(session=session, collection=row)

    def index_sizes(self) -> dict[str, tuple[int, str]]:
        """Vectors in each collection's live index, and its kind."""
        out = {}
        for row in self.list_collections():
            index = self.indexes.get(row)
            out[row.name] = (len(index), index.current.kind)
        return out

    def vectors(self, name: str, item_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored vectors of items (by item id)."""
        collection = self.collection(name)
        with self.sessions() as session:
            return repo.vectors_of(session=session, item_ids=item_ids, dim=collection.dim)

    def get_item(self, name: str, external_id: str) -> tuple[ItemRow, np.ndarray]:
        """A live item and its vector (raises NotFound)."""
        collection = self.collection(name)
        with self.sessions() as session:
            row = repo.get_item(session=session, collection=collection, external_id=external_id)
            stored = repo.vectors_of(session=session, item_ids=[row.id], dim=collection.dim)
            return row, stored[row.id]

    def items_with_hashes(self, name: str, digests: Sequence[str]) -> dict[str, list[str]]:
        """External ids of live items by content hash, for the hashes that are stored."""
        collection = self.collection(name)
        with self.sessions() as session:
            rows = repo.items_by_sha256(session=session, collection=collection, digests=digests)
        return {digest: [row.external_id for row in group] for digest, group in rows.items()}

    def list_items(self, name: str, *, limit: int, after: int = 0) -> list[ItemRow]:
        """Live items in id order after item id ``after``."""
        collection = self.collection(name)
        with self.sessions() as session:
            return repo.list_items(session=session, collection=collection, limit=limit, after=after)

    def update_metadata(self, name: str, external_id: str, metadata: dict[str, Any]) -> ItemRow:
        """Merge metadata into an item (a key set to None is removed); no re-embedding."""
        collection = self.collection(name)
        with self.sessions.begin() as session:
            return repo.update_metadata(
                session=session, collection=collection, external_id=external_id, metadata=metadata
            )

    # -- writes --------------------------------------------------------------------------
    def upsert(self, name: str, items: Sequence[ItemInput]) -> list[UpsertOutcome]:
        """Store items (one transaction) and then index their vectors."""
        collection = self.collection(name)
        vectors = {}
        for item in items:
            vectors[item.external_id] = as_vector(
                item.vector, dim=collection.dim, name=f"item {item.external_id!r} vector"
            )
            if collection.metric == "cosine" and not np.linalg.norm(vectors[item.external_id]):
                raise InvalidInput(f"item {item.external_id!r}: a zero vector has no direction")
        with self.indexes.writer_lock(collection):
            with self.sessions.begin() as session:
                outcomes = repo.upsert_items(session=session, collection=collection, items=items)
                seq = repo.last_seq(session=session, collection=collection)
            upserts = {o.item_id: vectors[o.external_id] for o in outcomes if o.vector_changed}
            self.indexes.apply(collection, upserts=upserts, deletes=[], seq=seq)
        return outcomes

    def delete(self, name: str, external_ids: Sequence[str]) -> int:
        """Soft-delete items by external id; returns how many were live."""
        collection = self.collection(name)
        with self.indexes.writer_lock(collection):
            with self.sessions.begin() as session:
                item_ids = repo.delete_items(
                    session=session, collection=collection, external_ids=external_ids
                )
                seq = repo.last_seq(session=session, collection=collection)
            self.indexes.apply(collection, upserts={}, deletes=item_ids, seq=seq)
        return len(item_ids)

    def delete_document(self, name: str, document_id: str) -> int:
        """Soft-delete every chunk of a document; returns how many were live."""
        collection = self.collection(name)
        with self.sessions() as session:
            rows = repo.document_items(
                session=session, collection=collection, document_ids=[document_id]
            )
        return self.delete(name, [row.external_id for row in rows]) if rows else 0

    def reindex(self, name: str) -> None:
        """Rebuild a collection's index from the stored vectors, then save it."""
        collection = self.collection(name)
        with self.indexes.writer_lock(collection):
            self.indexes.drop(collection)
            with self._batchers_lock:
                self._batchers.pop(collection.id, None)
        with self.indexes.writer_lock(collection):  # reopening finds no files: rebuilds
            self.indexes.save(collection)

    def save(self, name: str) -> None:
        """Persist a collection's index now (it is also saved on close)."""
        collection = self.collection(name)
        with self.indexes.writer_lock(collection):
            self.indexes.save(collection)

    # -- reads ---------------------------------------------------------------------------
    def search_vector(
        self,
        name: str,
        vector: np.ndarray,
        k: int = 10,
        *,
        filter: dict[str, Any] | None = None,
        min_score: float | None = None,
        offset: int = 0,
        params: SearchParams | None = None,
        exclude: Sequence[int] = (),
    ) -> list[Hit]:
        """The ``k`` live items nearest ``vector`` that match ``filter``.

        ``exclude`` holds item ids never to return (the items a query was built from);
        ``offset`` counts results after exclusion.
        """
        collection = self.collection(name)
        query = as_vector(vector, dim=collection.dim, name="query vector")
        skip = set(exclude)
        want, offset = (k + offset + len(skip), 0) if skip else (k, offset)
        index = self.indexes.get(collection)
        allow = predicate = None
        if filter is not None:
            with self.sessions() as session:
                matching = repo.filter_item_ids(
                    session=session,
                    collection=collection,
                    spec=filter,
                    limit=ALLOW_LIST_LIMIT + 1,
                )
            if matching.shape[0] <= ALLOW_LIST_LIMIT:
                allow = matching
            else:
                predicate = self._metadata_predicate(filter)
        started = time.perf_counter()
        if (
            self.settings.search.micro_batch
            and allow is None
            and predicate is None
            and min_score is None
            and offset == 0
            and params is None
        ):
            ids, scores = self._batcher(collection).search(query, want)
            keep = ids >= 0
            hits = list(zip(ids[keep].tolist(), scores[keep].tolist(), strict=True))
        else:
            hits = index.search(
                query[None, :],
                want,
                params=params,
                allow=allow,
                predicate=predicate,
                min_score=min_score,
                offset=offset,
            ).hits(0)
        self.encoders.on_timing("search", index.current.kind, time.perf_counter() - started)
        if skip:
            first = want - k - len(skip)
            hits = [h for h in hits if h[0] not in skip][first : first + k]
        with self.sessions() as session:
            rows = repo.hit_rows(session=session, item_ids=[i for i, _ in hits])
        return [
            Hit(
                row.external_id,
                score,
                row.metadata_,
                row.text,
                row.uri,
                row.document_id,
                row.id,
                row.sha256,
            )
            for item_id, score in hits
            if (row := rows.get(item_id)) is not None
        ]

    def _batcher(self, collection: CollectionRow) -> MicroBatcher:
        with self._batchers_lock:
            batcher = self._batchers.get(collection.id)
            if batcher is None:

                def search_batch(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
                    result = self.indexes.get(collection).search(queries, k)
                    return result.ids, result.scores

                batcher = MicroBatcher(search_batch)
                self._batchers[collection.id] = batcher
            return batcher

    def _metadata_predicate(self, spec: dict[str, Any]) -> Any:
        # The post-filter for broad filters: candidates' metadata checked with the reference
        # semantics, which the tests hold equal to the SQL the allow-list path runs.
        def predicate(ids: np.ndarray) -> np.ndarray:
            with self.sessions() as session:
                rows = repo.items_by_ids(session=session, item_ids=ids.tolist())
            keep = [i for i, row in rows.items() if matches(spec, row.metadata_)]
            return np.isin(ids, keep)

        return predicate
