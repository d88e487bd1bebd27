"""Vector indexes over FAISS, their persistence, and latent algebra on vectors.

base         the VectorIndex protocol, SearchParams and SearchResult
exact        ExactIndex: the NumPy exact index every FAISS kind is tested against
faiss_index  FaissIndex: flat, HNSW, IVF-Flat, IVF-PQ or any factory string
delta        rows written to an HNSW graph but not yet linked, searched exactly; the merger
slots        SlotMap: id → FAISS position, an array while ids are dense
selectors    FAISS id selectors built in NumPy: a bitmap of allowed slots, all but the dead
flat         few-query searches: one OpenMP thread, BLAS over a flat index's rows, stored rows
codes        compact rows (fp16, sq8, binary) and rescoring candidates against float32
managed      ManagedIndex: a live index that grows into a better kind and compacts
spec         index kinds, their parameters (IndexSpec) and the ``auto`` planner
cost         what exact search costs on this machine, so how far ``auto`` keeps it
batcher      MicroBatcher: concurrent single-vector searches run as one FAISS call
locks        a readers-writer lock, and a lock per key (per collection)
persist      the on-disk format: generations of data files under a verified manifest
recall       self-measured quality: how often an index finds what exact search finds
hamming      HammingIndex: 64-bit perceptual hashes within a radius (multi-index hashing)
algebra      latent algebra: weighted sums of terms, directions, centroids, slerp paths
adapter      adapters between two models' spaces (procrustes, affine), fitted and measured
fusion       fuse: several retrievers' ranked lists into one (rrf, weighted, relative)
"""

from __future__ import annotations

from latentspace.index.algebra import (
    Term,
    TermContribution,
    centroid,
    combine,
    direction,
    explain,
    slerp,
    slerp_path,
)
from latentspace.index.base import SearchParams, SearchResult, VectorIndex
from latentspace.index.exact import ExactIndex, exact_knn
from latentspace.index.faiss_index import FaissIndex
from latentspace.index.flat import gpu_available
from latentspace.index.managed import ManagedIndex
from latentspace.index.persist import Manifest, read_manifest
from latentspace.index.recall import estimate_recall, recall_at_k
from latentspace.index.spec import KINDS, IndexSpec, plan_index
from latentspace.types import METRICS, Metric

load_index = FaissIndex.load

__all__ = [
    "KINDS",
    "METRICS",
    "ExactIndex",
    "FaissIndex",
    "IndexSpec",
    "ManagedIndex",
    "Manifest",
    "Metric",
    "SearchParams",
    "SearchResult",
    "Term",
    "TermContribution",
    "VectorIndex",
    "centroid",
    "combine",
    "direction",
    "estimate_recall",
    "exact_knn",
    "explain",
    "gpu_available",
    "load_index",
    "plan_index",
    "read_manifest",
    "recall_at_k",
    "slerp",
    "slerp_path",
]
