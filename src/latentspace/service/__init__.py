"""The use-cases the API and the CLI share: collections, ingest, search, dedup, documents.

:class:`LatentSpace` is the core (database, encoders, indexes); the modules beside it are
functions that take it first, as repository functions take a session.
"""

from __future__ import annotations

from latentspace.service import dedup, documents, ingest, query
from latentspace.service.chunking import Chunk, chunk_text
from latentspace.service.dedup import ClusterMember, DuplicateCheck, DuplicateCluster
from latentspace.service.documents import DocumentResult, NewDocument, ingest_documents
from latentspace.service.encoders import EncoderFactory, EncoderPool, TimingHook
from latentspace.service.ingest import Duplicate, ItemResult, NewItem
from latentspace.service.query import (
    DirectionInfo,
    PathStep,
    QueryTerm,
    SearchAnswer,
    create_direction,
    search,
    walk_path,
)
from latentspace.service.space import (
    ALLOW_LIST_LIMIT,
    CollectionStats,
    Hit,
    LatentSpace,
    raw_vectors_fingerprint,
)

__all__ = [
    "ALLOW_LIST_LIMIT",
    "Chunk",
    "ClusterMember",
    "CollectionStats",
    "DirectionInfo",
    "DocumentResult",
    "Duplicate",
    "DuplicateCheck",
    "DuplicateCluster",
    "EncoderFactory",
    "EncoderPool",
    "Hit",
    "ItemResult",
    "LatentSpace",
    "NewDocument",
    "NewItem",
    "PathStep",
    "QueryTerm",
    "SearchAnswer",
    "TimingHook",
    "chunk_text",
    "create_direction",
    "dedup",
    "documents",
    "ingest",
    "ingest_documents",
    "query",
    "raw_vectors_fingerprint",
    "search",
    "walk_path",
]
