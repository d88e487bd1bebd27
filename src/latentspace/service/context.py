"""The service context: what every use-case needs, built once and passed to each call.

It holds parts and no behaviour: settings, the database engine and its sessions, the
encoders, the live indexes, the hit cache, the background job runner and a cache of
collection rows. The API's lifespan builds it (:func:`latentspace.service.lifecycle.start`),
as does the CLI; use-case modules are functions that take it first, as repository
functions take a session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from latentspace.datadir import DataDirLock
from latentspace.service.crossencoders import CrossEncoderPool
from latentspace.service.encoders import EncoderFactory, EncoderPool, TimingHook
from latentspace.service.hits import HitCache
from latentspace.service.indexes import LiveIndexes, LocalIndexes
from latentspace.service.keywords import KeywordIndexes
from latentspace.service.mapstate import MapCache
from latentspace.service.phashes import PhashIndexes
from latentspace.service.runner import JobRunner
from latentspace.settings import Settings
from latentspace.store.engine import make_engine, make_session_factory
from latentspace.store.tables import CollectionRow

__all__ = ["Background", "Context", "build_context"]


class Background(Protocol):
    """A thread started with the instance, stopped before it closes."""

    def stop(self) -> None:
        """Stop and wait for the thread."""


@dataclass
class Context:
    """Settings, database, encoders, live vector and keyword indexes and the cache of hit rows
    of one service instance.

    ``collections`` caches collection rows by name: rows never change after creation, and
    deleting a collection through the service forgets it. ``model_failures`` holds the
    model specs that could not be loaded at start-up, and why; ``lock`` the data
    directory's owner lock while this instance holds it; ``warnings`` what start-up found
    amiss that readiness reports; ``jobs`` runs background jobs (started by
    ``lifecycle.start``); ``phashes`` holds the images' perceptual hashes by collection;
    ``maps`` the fitted collection maps; ``follower`` the thread applying other
    processes' writes (``service.replica``), when one runs.
    """

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    encoders: EncoderPool
    indexes: LiveIndexes
    keywords: KeywordIndexes
    hits: HitCache
    jobs: JobRunner
    phashes: PhashIndexes
    rerankers: CrossEncoderPool = field(default_factory=lambda: CrossEncoderPool([]))
    collections: dict[str, CollectionRow] = field(default_factory=dict)
    maps: MapCache = field(default_factory=MapCache)
    model_failures: dict[str, str] = field(default_factory=dict)
    lock: DataDirLock | None = None
    follower: Background | None = None
    warnings: list[str] = field(default_factory=list)


def build_context(
    settings: Settings,
    *,
    engine: Engine | None = None,
    encoder_factory: EncoderFactory | None = None,
    on_timing: TimingHook | None = None,
) -> Context:
    """Assemble a context; opens nothing but the engine (see ``lifecycle.start``).

    Args:
        settings: everything configurable.
        engine: an engine to use instead of one made from ``settings``.
        encoder_factory: builds an encoder from a spec (tests inject fakes); default the
            registry's ``create_encoder``.
        on_timing: called with ``(what, label, seconds)`` after each encode and search.

    Raises:
        VectorIndexError: the settings ask for a GPU that is not there.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = engine or make_engine(settings.resolved_database_url())
    sessions = make_session_factory(engine)
    hits = HitCache(sessions, budget_bytes=settings.search.hit_cache_mb * 2**20)
    phashes = PhashIndexes(sessions)

    def changed_elsewhere(collection: CollectionRow, item_ids: frozenset[int]) -> None:
        # Items another process wrote: what this one holds of them is read again from SQL.
        hits.forget(collection, item_ids)
        phashes.refresh(collection, sorted(item_ids))

    indexes: LiveIndexes
    if settings.cluster.shards:
        from latentspace.cluster.sharded import RayShardedIndexes

        indexes = RayShardedIndexes(settings)
    else:
        indexes = LocalIndexes(
            data_dir=settings.data_dir,
            sessions=sessions,
            settings=settings.index,
            micro_batch=settings.search.micro_batch,
            on_timing=on_timing,
            on_changed=changed_elsewhere,
        )
    encoders = EncoderPool(settings.encoder, factory=encoder_factory, on_timing=on_timing)
    rerankers = CrossEncoderPool(
        [s.strip() for s in settings.rerank_models.split(",") if s.strip()],
        device=None if settings.encoder.device == "auto" else settings.encoder.device,
    )
    keywords, jobs = KeywordIndexes(sessions), JobRunner(sessions)
    return Context(
        settings, engine, sessions, encoders, indexes, keywords, hits, jobs, phashes, rerankers
    )
