"""Vector indexes over FAISS, their persistence, and latent algebra on vectors."""

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
from latentspace.index.faiss_index import FaissIndex, gpu_available
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
