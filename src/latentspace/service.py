"""The use-cases the API and the CLI share: collections, writes, vector search.

:class:`LatentSpace` owns the database engine and every collection's index. A write is one
SQL transaction (items + vectors + oplog), committed, then applied to the index under the
collection's writer lock; a search asks SQL for the filter's ids, FAISS for the neighbours,
and SQL again for the hits' metadata, dropping anything no longer live.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine

from latentspace import migrations
from latentspace.errors import InvalidInput, StoreError
from latentspace.index import KINDS, METRICS, SearchParams
from latentspace.index.algebra import as_vector
from latentspace.indexes import CollectionIndexes, OpenReport
from latentspace.settings import Settings
from latentspace.store import repository as repo
from latentspace.store.engine import make_engine, make_session_factory
from latentspace.store.filters import matches
from latentspace.store.repository import ItemInput, UpsertOutcome
from latentspace.store.tables import CollectionRow

__all__ = ["ALLOW_LIST_LIMIT", "Hit", "LatentSpace", "raw_vectors_fingerprint"]

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


class LatentSpace:
    """Collections, items and search over one database and one data directory."""

    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._url = settings.resolved_database_url()
        self.engine = engine or make_engine(self._url)
        self.sessions = make_session_factory(self.engine)
        self.indexes = CollectionIndexes(data_dir=settings.data_dir, sessions=self.sessions)

    @classmethod
    def open(cls, settings: Settings, *, engine: Engine | None = None) -> LatentSpace:
        """Upgrade the database (if ``auto_migrate``) and bring every index up to date.

        Raises:
            StoreError: the schema is not at the newest revision and may not be upgraded.
        """
        space = cls(settings, engine=engine)
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
        """The collection row (raises NotFound)."""
        with self.sessions() as session:
            return repo.get_collection(session=session, name=name)

    def create_collection(
        self,
        name: str,
        *,
        dim: int,
        model: str | None = None,
        fingerprint: str | None = None,
        metric: str = "cosine",
        index: str = "auto",
        index_params: dict[str, Any] | None = None,
    ) -> CollectionRow:
        """Create a collection; without a model it stores raw vectors of ``dim``."""
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
        with self.sessions.begin() as session:
            row = repo.delete_collection(session=session, name=name)
        self.indexes.drop(row)

    def count(self, name: str) -> int:
        """Live items in a collection."""
        with self.sessions() as session:
            row = repo.get_collection(session=session, name=name)
            return repo.count_live(session=session, collection=row)

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
    ) -> list[Hit]:
        """The ``k`` live items nearest ``vector`` that match ``filter``."""
        collection = self.collection(name)
        query = as_vector(vector, dim=collection.dim, name="query vector")
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
        result = index.search(
            query[None, :],
            k,
            params=params,
            allow=allow,
            predicate=predicate,
            min_score=min_score,
            offset=offset,
        )
        hits = result.hits(0)
        with self.sessions() as session:
            rows = repo.items_by_ids(session=session, item_ids=[i for i, _ in hits])
        return [
            Hit(row.external_id, score, row.metadata_, row.text, row.uri, row.document_id, row.id)
            for item_id, score in hits
            if (row := rows.get(item_id)) is not None
        ]

    def _metadata_predicate(self, spec: dict[str, Any]) -> Any:
        # The post-filter for broad filters: candidates' metadata checked with the reference
        # semantics, which the tests hold equal to the SQL the allow-list path runs.
        def predicate(ids: np.ndarray) -> np.ndarray:
            with self.sessions() as session:
                rows = repo.items_by_ids(session=session, item_ids=ids.tolist())
            keep = [i for i, row in rows.items() if matches(spec, row.metadata_)]
            return np.isin(ids, keep)

        return predicate
