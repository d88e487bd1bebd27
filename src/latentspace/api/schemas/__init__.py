"""Request and response bodies of the v1 API (``*Create`` in, ``*Public`` out), by resource.

common       shared pieces: Problem (the error shape), names, includes, StrictModel
collections  CollectionCreate, CollectionPublic, IndexInfo, keyword settings, snapshots
items        upsert batches (ItemsUpsert, VectorsUpsert), statuses, ItemPublic, hash lookups
search       SearchRequest (terms, composite queries, fusion, rerank), hits, directions,
             paths
documents    RAG documents: ChunkSpec, DocumentCreate, per-document statuses
duplicates   duplicate clusters, the check of a candidate, resolution, the trash
classify     zero-shot classification, auto-tagging jobs, JobPublic (a job's progress)
maps         MapRequest (the job that fits a map), MapPublic (what reading it returns)
migrate      MigrateRequest (the job that moves a collection to another model), adapters
"""

from __future__ import annotations

from latentspace.api.schemas.classify import (
    AutotagRequest,
    Classified,
    ClassifyRequest,
    ClassifyResult,
    JobList,
    JobPublic,
    LabelIn,
    LabelProbability,
)
from latentspace.api.schemas.collections import (
    CollectionCreate,
    CollectionList,
    CollectionPublic,
    IndexInfo,
    KeywordSettings,
    PayloadIndexInfo,
    SnapshotRequest,
    SnapshotRestore,
    SnapshotSaved,
)
from latentspace.api.schemas.common import Problem
from latentspace.api.schemas.documents import (
    ChunkSpec,
    DocumentCreate,
    DocumentsCreate,
    DocumentsResult,
    DocumentStatus,
)
from latentspace.api.schemas.duplicates import (
    ClusterMemberPublic,
    ClusterPublic,
    DuplicateCheckRequest,
    DuplicateCheckResult,
    DuplicatesResult,
    ResolveRequest,
    ResolveResult,
    RestoreRequest,
    RestoreResult,
    TierName,
    TrashedPublic,
    TrashList,
)
from latentspace.api.schemas.items import (
    DuplicateOf,
    DuplicatePolicyIn,
    HashLookup,
    HashLookupResult,
    ItemCreate,
    ItemList,
    ItemPatch,
    ItemPublic,
    ItemStatus,
    ItemsUpsert,
    ItemsUpsertResult,
    VectorColumns,
    VectorsUpsert,
)
from latentspace.api.schemas.maps import MapCluster, MapPublic, MapRequest
from latentspace.api.schemas.migrate import AdapterList, AdapterPublic, MigrateRequest
from latentspace.api.schemas.search import (
    CompositeQuery,
    ConsistencyIn,
    DirectionCreate,
    DirectionList,
    DirectionPublic,
    ExplainTerm,
    FusionIn,
    LegPlace,
    PathRequest,
    PathResult,
    PathStepPublic,
    RerankIn,
    SearchHit,
    SearchParamsIn,
    SearchRequest,
    SearchResult,
    TermIn,
)

__all__ = [
    "AdapterList",
    "AdapterPublic",
    "AutotagRequest",
    "ChunkSpec",
    "Classified",
    "ClassifyRequest",
    "ClassifyResult",
    "ClusterMemberPublic",
    "ClusterPublic",
    "CollectionCreate",
    "CollectionList",
    "CollectionPublic",
    "CompositeQuery",
    "ConsistencyIn",
    "DirectionCreate",
    "DirectionList",
    "DirectionPublic",
    "DocumentCreate",
    "DocumentStatus",
    "DocumentsCreate",
    "DocumentsResult",
    "DuplicateCheckRequest",
    "DuplicateCheckResult",
    "DuplicateOf",
    "DuplicatePolicyIn",
    "DuplicatesResult",
    "ExplainTerm",
    "FusionIn",
    "HashLookup",
    "HashLookupResult",
    "IndexInfo",
    "ItemCreate",
    "ItemList",
    "ItemPatch",
    "ItemPublic",
    "ItemStatus",
    "ItemsUpsert",
    "ItemsUpsertResult",
    "JobList",
    "JobPublic",
    "KeywordSettings",
    "LabelIn",
    "LabelProbability",
    "LegPlace",
    "MapCluster",
    "MapPublic",
    "MapRequest",
    "MigrateRequest",
    "PathRequest",
    "PathResult",
    "PathStepPublic",
    "PayloadIndexInfo",
    "Problem",
    "RerankIn",
    "ResolveRequest",
    "ResolveResult",
    "RestoreRequest",
    "RestoreResult",
    "SearchHit",
    "SearchParamsIn",
    "SearchRequest",
    "SearchResult",
    "SnapshotRequest",
    "SnapshotRestore",
    "SnapshotSaved",
    "TermIn",
    "TierName",
    "TrashList",
    "TrashedPublic",
    "VectorColumns",
    "VectorsUpsert",
]
