"""Live indexes: each collection's vector index, kept consistent with SQL (the source of truth).

:class:`LiveIndexes` is the seam every use-case goes through: open, search, apply committed
writes, save, rebuild, stats. :class:`LocalIndexes` is the in-process implementation: one
FAISS index per collection in this process, saved under ``data_dir/indexes``, which also
follows what other processes commit (``catch_up``, driven by ``service.replica``).
``latentspace.cluster.sharded.RayShardedIndexes`` implements the same protocol on Ray Serve
shards.

On open, the saved index is verified against its manifest and the encoder fingerprint, the
oplog written after its last applied sequence is replayed from SQL, and the result must hold
exactly the live rows; otherwise the index is rebuilt from the stored vectors. Which of the
three happened is logged and returned. Writes reach the index only after their SQL
transaction committed, in the order of their oplog sequence (callers hold :meth:`writing`).
"""

from __future__ import annotations

from latentspace.service.indexes.base import CommittedWrite, IndexStats, LiveIndexes, OpenReport
from latentspace.service.indexes.local import LocalIndexes
from latentspace.service.indexes.setup import resolve_gpu

__all__ = [
    "CommittedWrite",
    "IndexStats",
    "LiveIndexes",
    "LocalIndexes",
    "OpenReport",
    "resolve_gpu",
]
