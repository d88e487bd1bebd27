"""The one owner of what a process keeps per collection.

Every view a process holds of a collection (its live vector index, keyword index, hit
rows, payload index, perceptual hashes, map, collection row and the damage found in its
stored data) is registered once with a
:class:`LiveState` and hears these calls, each made in one place:

- :meth:`LiveState.committed` after a write's SQL transaction committed (under
  :meth:`LiveState.writing`, so views see commits in oplog order); what other processes
  commit reaches the views the same way, as the index replays it from the oplog;
- :meth:`LiveState.forget` once a collection's rows are gone (deleted, replaced, restored
  over): nothing of it survives in this process, and collection ids are never reused, so
  nothing keyed by an id can be served to a later collection;
- :meth:`LiveState.remodelled` once a migration moved it to another model's space.
- :meth:`LiveState.retuned` once its index settings changed (quantization, rescore).

Use-cases read views through the owner (``ctx.live.hits.rows(...)``) and never change one
by hand: a new view is one more :meth:`LiveState.register`, not a new write site.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from latentspace.live.commit import Commit, View
from latentspace.live.crossencoders import CrossEncoderPool
from latentspace.live.damage import DamageLog
from latentspace.live.encoders import EncoderFactory, EncoderPool
from latentspace.live.expiries import Expiries
from latentspace.live.hits import HitCache
from latentspace.live.indexes import LiveIndexes, LocalIndexes
from latentspace.live.keywords import KeywordIndexes
from latentspace.live.maps import MapViews
from latentspace.live.payloads import PayloadIndexes
from latentspace.live.phashes import PhashIndexes
from latentspace.live.rows import CollectionRows
from latentspace.settings import Settings
from latentspace.store.tables import CollectionRow
from latentspace.types import TimingHook

__all__ = ["LiveState"]

logger = logging.getLogger(__name__)


class LiveState:
    """What this process keeps per collection, behind one object.

    Args:
        settings: everything configurable.
        sessions: the SQL session factory the views read from.
        encoder_factory: builds an encoder from a spec (tests inject fakes).
        on_timing: called with ``(what, label, seconds)`` after each encode and search.

    Raises:
        VectorIndexError: the settings ask for a GPU that is not there.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        *,
        encoder_factory: EncoderFactory | None = None,
        on_timing: TimingHook | None = None,
    ) -> None:
        self.indexes: LiveIndexes
        if settings.cluster.shards:
            from latentspace.live.indexes.sharded import RayShardedIndexes  # imports Ray

            self.indexes = RayShardedIndexes(settings)
        else:
            self.indexes = LocalIndexes(
                data_dir=settings.data_dir,
                sessions=sessions,
                settings=settings.index,
                micro_batch=settings.search.micro_batch,
                on_timing=on_timing,
                on_changed=self._changed_elsewhere,
            )
        self.rows = CollectionRows(sessions)
        self.damage = DamageLog()
        self.keywords = KeywordIndexes(sessions, self.damage)
        self.payloads = PayloadIndexes(sessions)
        self.hits = HitCache(sessions, budget_bytes=settings.search.hit_cache_mb * 2**20)
        self.phashes = PhashIndexes(sessions)
        self.expiries = Expiries(sessions)
        self.maps = MapViews(settings.data_dir)
        self.encoders = EncoderPool(settings.encoder, factory=encoder_factory, on_timing=on_timing)
        self.rerankers = CrossEncoderPool(
            [s.strip() for s in settings.rerank_models.split(",") if s.strip()],
            device=None if settings.encoder.device == "auto" else settings.encoder.device,
        )
        self._views: list[View] = []
        views = (
            self.rows,
            self.keywords,
            self.payloads,
            self.hits,
            self.phashes,
            self.expiries,
            self.maps,
            self.damage,
        )
        for view in (self.indexes, *views):
            self.register(view)

    def register(self, view: View) -> None:
        """Add a view: from now on it hears every commit, forget and remodel (once)."""
        if any(v is view for v in self._views):
            raise ValueError(f"{type(view).__name__} is registered already")
        self._views.append(view)

    @property
    def writes_files(self) -> bool:
        """Whether this process writes the data directory's files (a replica sharing the
        directory with the process that does only reads them)."""
        return self.indexes.writes_files

    @writes_files.setter
    def writes_files(self, value: bool) -> None:
        self.indexes.writes_files = value

    @contextmanager
    def writing(self, collection: CollectionRow) -> Iterator[None]:
        """Held around a write's SQL commit and its :meth:`committed`, so that every view
        hears the collection's commits in oplog order."""
        with self.indexes.writing(collection):
            yield

    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Tell every view what a transaction committed (the caller holds :meth:`writing`)."""
        for view in self._views:
            view.committed(collection, commit)

    def forget(self, collection: CollectionRow) -> None:
        """Drop everything this process holds of a collection whose rows are gone, and its
        files when this process writes them."""
        for view in self._views:
            view.forget(collection, files=self.writes_files)
        logger.info("collection %s (id %d): forgotten", collection.name, collection.id)

    def remodelled(self, collection: CollectionRow) -> None:
        """Drop what depends on a collection's old model space (``collection`` is the old
        row); the next use opens the new one."""
        for view in self._views:
            view.remodelled(collection, files=self.writes_files)

    def retuned(self, collection: CollectionRow) -> None:
        """The collection's index settings changed (``collection`` is the old row): its row
        is read again, and the index rebuilt under the new settings in the background."""
        self.rows.forget(collection, files=False)
        self.indexes.retune(self.rows.get(collection.name))

    def caught_up(self, collection: CollectionRow) -> None:
        """The index read SQL afresh (it was opened to reach a ``min_seq``), so other
        processes' writes may be in it that no view heard of: each reads them at its next
        use (views that tail the oplog, the keyword and payload indexes, read it again)."""
        self._changed_elsewhere(collection, frozenset())

    def _changed_elsewhere(self, collection: CollectionRow, item_ids: frozenset[int]) -> None:
        # The index replayed other processes' writes of these items: the other views read
        # what they hold of them again.
        commit = Commit(stale=sorted(item_ids))
        for view in self._views:
            if view is not self.indexes:
                view.committed(collection, commit)
