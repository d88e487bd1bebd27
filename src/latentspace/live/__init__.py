"""What a process keeps per collection, behind one owner: :class:`LiveState`.

    state        LiveState: registers the views; committed, forget, remodelled, writing
    commit       Commit (what one transaction changed) and the View protocol
    indexes/     the live vector indexes: the LiveIndexes seam (base), in-process FAISS
                 (local, with setup and tail), Ray Serve shards (sharded, shards)
    tailed       Tailed: views built from SQL and brought up to date from the oplog
    keywords     per-collection BM25 indexes (tailed)
    payloads     per-collection payload indexes (tailed): filters from memory (store.payload)
    hits         the fields search hits show, in memory
    phashes      per-collection Hamming indexes of images' perceptual hashes
    expiries     per-collection expiries (tailed): the ids past theirs, which reads skip
    maps         fitted maps and their latest extension (memory and data_dir/maps)
    rows         collection rows by name
    encoders     one encoder per model spec, built on first use
    crossencoders  the configured cross-encoders for reranking
    damage       damage found in stored data, per collection, until repaired (/readyz)

Use-cases read the views through ``ctx.live``; only the owner changes them.
"""

from __future__ import annotations

from latentspace.live.commit import Commit, View
from latentspace.live.encoders import EncoderFactory, EncoderPool
from latentspace.live.hits import HitCache, HitRow
from latentspace.live.indexes import IndexStats, LiveIndexes, LocalIndexes, OpenReport
from latentspace.live.maps import Cluster, Fitted, MapView, MapViews
from latentspace.live.state import LiveState

__all__ = [
    "Cluster",
    "Commit",
    "EncoderFactory",
    "EncoderPool",
    "Fitted",
    "HitCache",
    "HitRow",
    "IndexStats",
    "LiveIndexes",
    "LiveState",
    "LocalIndexes",
    "MapView",
    "MapViews",
    "OpenReport",
    "View",
]
