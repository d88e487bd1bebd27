"""One shard of sharded search: the live index of a share of every collection's items.

A shard holds, per collection, the items whose id falls to it (``item_id % shards ==
shard``), read from SQL when first asked and kept current by the oplog like any replica
(:mod:`latentspace.live.indexes.tail`). It runs as a Ray Serve deployment
(:mod:`latentspace.live.indexes.sharded` deploys and calls it) but is a plain class, so it is
also tested and usable without Ray.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentspace.errors import NotFound
from latentspace.index import FaissIndex, IndexSpec, SearchParams
from latentspace.live.indexes import setup
from latentspace.live.indexes.tail import Tail, replay
from latentspace.store import oplog
from latentspace.store import repository as repo
from latentspace.store.engine import make_engine, make_session_factory
from latentspace.store.tables import CollectionRow

__all__ = ["Shard"]


@dataclass
class _Share:
    collection: CollectionRow
    index: FaissIndex
    applied_seq: int


class Shard:
    """Shard ``shard`` of ``shards`` over the database at ``database_url``.

    Args:
        exact_limit: ``auto`` collections search this shard's share exactly below this
            many vectors, HNSW beyond.
    """

    def __init__(self, shard: int, shards: int, database_url: str, exact_limit: int) -> None:
        self._shard, self._shards = shard, shards
        self._sessions = make_session_factory(make_engine(database_url))
        self._exact_limit = exact_limit
        self._shares: dict[int, _Share] = {}
        self._lock = threading.Lock()  # catch-ups, rebuilds and drops, one at a time
        self._opening = threading.Lock()

    def _mine(self, ids: np.ndarray) -> np.ndarray:
        mine: np.ndarray = ids[ids % self._shards == self._shard]
        return mine

    def _share(self, collection_id: int) -> _Share:
        share = self._shares.get(collection_id)
        if share is None:
            with self._opening:  # one reader per shard builds a share; the others wait
                return self._open(collection_id)
        return share

    def _open(self, collection_id: int) -> _Share:
        share = self._shares.get(collection_id)
        if share is None:
            with self._sessions() as session:
                collection = session.get(CollectionRow, collection_id)
                if collection is None:
                    raise NotFound(f"collection {collection_id} is gone")
                session.expunge(collection)
                seq = oplog.last_seq(session=session, collection=collection)
                ids, vectors = repo.live_vectors(session=session, collection=collection)
            keep = ids % self._shards == self._shard
            index = FaissIndex(self._spec(collection, int(keep.sum())), collection.dim)
            index.rows_from(setup.row_source(self._sessions, collection))  # quantized: rescore
            if keep.any():
                index.add(ids[keep], vectors[keep])
            share = self._shares[collection_id] = _Share(collection, index, seq)
        return share

    def _spec(self, collection: CollectionRow, n: int) -> IndexSpec:
        return setup.planned_spec(collection, n, memory_budget=None, exact_limit=self._exact_limit)

    def catch_up(self, collection_id: int, upto: int | None = None) -> int:
        """Apply the oplog rows of this shard's share (up to ``upto``); the sequence the
        share has applied."""
        with self._lock:
            share = self._share(collection_id)
            if upto is not None and share.applied_seq >= upto:
                return share.applied_seq
            with self._sessions() as session:
                rows = oplog.after(
                    session=session, collection=share.collection, seq=share.applied_seq
                )
                tail = Tail.of(rows)
                mine = self._mine(np.fromiter(tail.vectors, np.int64, len(tail.vectors)))
                replay(share.collection, session, share.index, mine.tolist())
            share.applied_seq = max(share.applied_seq, tail.last)
            return share.applied_seq

    def search(
        self,
        collection_id: int,
        queries: np.ndarray,
        k: int,
        allow: np.ndarray | None = None,
        params: SearchParams | None = None,
        min_score: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The share's ``k`` best (ids, scores) per query; ``allow`` may name any ids."""
        share = self._share(collection_id)
        if allow is not None:
            allow = self._mine(np.asarray(allow, dtype=np.int64))
        result = share.index.search(queries, k, allow=allow, params=params, min_score=min_score)
        return result.ids, result.scores

    def stats(self, collection_id: int) -> dict[str, Any]:
        """Kind, parameters, size and applied sequence of the share's index."""
        share = self._share(collection_id)
        index = share.index
        return {
            "kind": index.kind,
            "params": dict(index.spec.params),
            "count": len(index),
            "applied_seq": share.applied_seq,
        }

    def rebuild(self, collection_id: int) -> int:
        """Forget the share and read it again from SQL; the sequence it is at."""
        with self._lock:
            self._shares.pop(collection_id, None)
            return self._share(collection_id).applied_seq

    def drop(self, collection_id: int) -> None:
        """Forget a deleted collection."""
        with self._lock:
            self._shares.pop(collection_id, None)
