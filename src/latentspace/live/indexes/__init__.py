"""Live indexes: each collection's vector index, kept consistent with SQL (the source of truth).

    base         the LiveIndexes seam (open, search, committed, save, rebuild, stats, catch_up),
                 OpenReport, IndexStats
    local        LocalIndexes: one FAISS index per collection, in this process
    setup        where an index may live (resolve_gpu, a usable folder), what to build,
                 where its vectors come from (batches, rows to rescore), measured recall,
                 the exact index from SQL
    tail         bringing an index up to date from the oplog: the rows other writers committed
    budget       the memory guard: a write the indexes' budget cannot hold is refused (507)
    sharded      RayShardedIndexes: the same protocol on Ray Serve shards, their top-k merged
    shards       Shard: one shard, the live index of a share of every collection's items

:class:`LiveIndexes` is the seam every use-case goes through: open, search, apply committed
writes, save, rebuild, stats. :class:`LocalIndexes` is the in-process implementation: one
FAISS index per collection in this process, saved under ``data_dir/indexes``, which also
follows what other processes commit (``catch_up``, driven by ``service.replica``).
:class:`~latentspace.live.indexes.sharded.RayShardedIndexes` implements the same protocol on
Ray Serve shards (``shards`` is the deployment each one runs).

On open, the saved index is verified against its manifest and the encoder fingerprint, the
oplog written after its last applied sequence is replayed from SQL, and the result must hold
exactly the live rows; otherwise the index is rebuilt from the stored vectors. Which of the
three happened is logged and returned. Writes reach the index only after their SQL
transaction committed, in the order of their oplog sequence (callers hold :meth:`writing`).
"""

from __future__ import annotations

from latentspace.live.indexes.base import IndexStats, LiveIndexes, OpenReport
from latentspace.live.indexes.local import LocalIndexes
from latentspace.live.indexes.setup import resolve_gpu

__all__ = [
    "IndexStats",
    "LiveIndexes",
    "LocalIndexes",
    "OpenReport",
    "resolve_gpu",
]
