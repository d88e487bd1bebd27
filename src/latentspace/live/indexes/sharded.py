"""Sharded search on Ray Serve: the live indexes as ``shards`` Serve deployments.

Items are sharded by id (``item_id % shards``); each shard
(:class:`~latentspace.live.indexes.shards.Shard`) holds its share of every collection and
keeps it current from the SQL oplog. A search goes to every shard with the same allow-list,
each answers its best ``offset + k``, and the merge keeps the best ``offset + k`` of all:
the exact top of the union, so an exact index gives the unsharded answer. Broad filters (a
post-filter predicate that needs this process's database) are applied here, after the merge,
asking the shards for more candidates until enough pass or none are left. A write is applied
by asking every shard to catch up to its sequence before the write returns
(read-your-writes).

Turned on by ``LATENTSPACE_CLUSTER__SHARDS`` (> 0) with
``LATENTSPACE_CLUSTER__RAY_ADDRESS``; several API processes on one database share the same
deployments (by name).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Unpack

import numpy as np

from latentspace.index import SearchResult
from latentspace.index.base import SearchOptions
from latentspace.index.locks import KeyedLocks
from latentspace.index.spec import EXACT_LIMIT
from latentspace.live.commit import Commit
from latentspace.live.indexes.base import IndexStats, OpenReport
from latentspace.settings import Settings
from latentspace.store.tables import CollectionRow

__all__ = ["RayShardedIndexes"]

logger = logging.getLogger(__name__)


class RayShardedIndexes:
    """The :class:`~latentspace.live.indexes.LiveIndexes` of Ray Serve shards."""

    writes_files = False  # the shards read SQL; there are no index files

    def __init__(self, settings: Settings) -> None:
        import ray
        from ray import serve

        from latentspace.live.indexes.shards import Shard

        cluster = settings.cluster
        if not ray.is_initialized():
            ray.init(address=cluster.ray_address, include_dashboard=False)
        serve.start(proxy_location="Disabled")
        url = settings.resolved_database_url()
        exact = settings.index.exact_limit or EXACT_LIMIT
        deployment = serve.deployment(ray_actor_options={"num_cpus": cluster.shard_cpus})(Shard)
        self._handles = []
        for shard in range(cluster.shards):
            name = f"latentspace-shard-{shard}-of-{cluster.shards}"
            app = deployment.options(name=name).bind(shard, cluster.shards, url, exact)
            self._handles.append(serve.run(app, name=name, route_prefix=None))
        logger.info("sharded search: %d Ray Serve shards", cluster.shards)
        self._applied: dict[int, int] = {}
        self._locks = KeyedLocks()

    def _all(self, method: str, *args: Any) -> list[Any]:
        # Call every shard at once and wait for all of them.
        calls = [getattr(handle, method).remote(*args) for handle in self._handles]
        return [call.result() for call in calls]

    def _caught_up(self, collection: CollectionRow, upto: int | None) -> int:
        seq = int(min(self._all("catch_up", collection.id, upto)))
        self._applied[collection.id] = seq
        return seq

    def open(self, collection: CollectionRow) -> OpenReport:
        """Every shard reads its share (once) and catches up with the oplog."""
        self._caught_up(collection, None)
        return OpenReport("sharded", reason=f"{len(self._handles)} Ray Serve shards")

    @contextmanager
    def writing(self, collection: CollectionRow) -> Iterator[None]:
        """Serialise this process's writes to one collection (SQL orders them across)."""
        with self._locks.of(collection.id):
            yield

    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Every shard catches up to ``commit.seq`` (each applies its share from SQL)."""
        if commit.seq:
            self._caught_up(collection, commit.seq)

    def catch_up(self, collection: CollectionRow, *, timeout: float | None = None) -> int | None:
        """Every shard applies what was committed; how far they all are."""
        return self._caught_up(collection, None)

    def applied_seq(self, collection: CollectionRow) -> int | None:
        """The oplog sequence every shard has applied; None before the first call."""
        return self._applied.get(collection.id)

    def open_ids(self) -> list[int]:
        """Collections this process has asked the shards about."""
        return list(self._applied)

    def ready(self, collection: CollectionRow) -> bool:
        """Never "at once": a shard call waits on the network, so searches take the pool."""
        return False

    def search(
        self,
        collection: CollectionRow,
        queries: np.ndarray,
        k: int,
        **options: Unpack[SearchOptions],
    ) -> SearchResult:
        """The exact merge of the shards' best ``offset + k`` per query."""
        offset, predicate = options.get("offset", 0), options.get("predicate")
        depth = offset + k
        want = depth if predicate is None else 4 * depth
        args = (options.get("allow"), options.get("params"), options.get("min_score"))
        while True:
            answers = self._all("search", collection.id, queries, want, *args)
            ids = np.concatenate([a[0] for a in answers], axis=1)
            scores = np.concatenate([a[1] for a in answers], axis=1)
            exhausted = all(int((a[0] >= 0).sum(axis=1).max()) < want for a in answers)
            rows = [_merge(ids[r], scores[r], predicate) for r in range(ids.shape[0])]
            if predicate is None or exhausted or all(len(r[0]) >= depth for r in rows):
                break
            want *= 4
        out_ids = np.full((len(rows), k), -1, np.int64)
        out_scores = np.full((len(rows), k), -np.inf, np.float32)
        for r, (row_ids, row_scores) in enumerate(rows):
            page = slice(offset, offset + k)
            n = len(row_ids[page])
            out_ids[r, :n], out_scores[r, :n] = row_ids[page], row_scores[page]
        return SearchResult(out_ids, out_scores)

    def save(self, collection: CollectionRow) -> None:
        """Nothing to save: the shards rebuild their shares from SQL."""

    def check_room(self, collection: CollectionRow, adding: int) -> None:
        """Nothing to check here: each shard's memory is its own host's."""

    def retune(self, collection: CollectionRow) -> None:
        """Every shard rebuilds its share from SQL under the new settings."""
        self.rebuild(collection)

    def rebuild(self, collection: CollectionRow) -> OpenReport:
        """Every shard reads its share again from SQL."""
        self._applied[collection.id] = int(min(self._all("rebuild", collection.id)))
        return OpenReport("rebuilt", reason="requested")

    def stats(self, collection: CollectionRow) -> IndexStats:
        """The shards' kinds and sizes, summed."""
        shares = self._all("stats", collection.id)
        return IndexStats(
            kind=shares[0]["kind"],
            params={**shares[0]["params"], "shards": len(shares)},
            count=sum(s["count"] for s in shares),
            applied_seq=min(s["applied_seq"] for s in shares),
            rebuilding=False,
            on_gpu=False,
        )

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        """Every shard forgets the collection (shards keep no files)."""
        del files
        self._all("drop", collection.id)
        self._applied.pop(collection.id, None)

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """Every shard drops its share of the old space; the next use reads the new one."""
        self.forget(collection, files=files)

    def close(self, collections: list[CollectionRow]) -> None:
        """Nothing to save; the deployments stay up for other API processes."""


def _merge(ids: np.ndarray, scores: np.ndarray, predicate: Any) -> tuple[np.ndarray, np.ndarray]:
    # One query's candidates from every shard: best first, padding and filtered-out dropped.
    keep = ids >= 0
    ids, scores = ids[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    ids, scores = ids[order], scores[order]
    if predicate is not None and ids.size:
        mask = predicate(ids)
        ids, scores = ids[mask], scores[mask]
    return ids, scores
