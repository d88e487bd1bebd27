"""Request and response bodies of the v1 API (``*Create`` in, ``*Public`` out)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

__all__ = [
    "ChunkSpec",
    "ClusterPublic",
    "CollectionCreate",
    "CollectionList",
    "CollectionPublic",
    "CompositeQuery",
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
    "DuplicatesResult",
    "ExplainTerm",
    "IndexInfo",
    "ItemCreate",
    "ItemList",
    "ItemPatch",
    "ItemPublic",
    "ItemStatus",
    "ItemsUpsert",
    "ItemsUpsertResult",
    "PathRequest",
    "PathResult",
    "PathStepPublic",
    "Problem",
    "SearchHit",
    "SearchParamsIn",
    "SearchRequest",
    "SearchResult",
    "TermIn",
]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
Include = Literal["metadata", "text", "uri", "document_id", "sha256", "vector"]
DEFAULT_INCLUDE: list[Include] = ["metadata", "text", "uri", "document_id"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An RFC 9457 problem: every error the API returns has this shape."""

    type: str = Field(examples=["/problems/not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["collection 'photos' does not exist"])
    instance: str | None = Field(default=None, examples=["/v1/collections/photos"])
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field (validation) or per-item (batch) errors."
    )


# -- collections ---------------------------------------------------------------------------
class CollectionCreate(_In):
    """A new collection: a model's space, or raw vectors of ``dim``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "photos", "model": "tiny-shapes"},
                {"name": "rag", "model": "st:/models/all-MiniLM-L6-v2", "index": "hnsw"},
                {"name": "raw", "dim": 128, "metric": "cosine"},
            ]
        },
    )

    name: str = Field(pattern=NAME_PATTERN, description="Letters, digits, '_', '.', '-'.")
    model: str | None = Field(
        default=None,
        max_length=512,
        description="Encoder spec: `tiny-shapes`, `openclip:ARCH/TAG`, `openclip:/dir`, "
        "`st:NAME` or `st:/dir`. Omit for a collection of raw vectors.",
    )
    dim: int | None = Field(default=None, ge=1, le=65_536, description="For raw vectors.")
    index: Literal["auto", "flat", "hnsw", "ivf", "ivfpq"] = Field(
        default="auto",
        description="auto = exact below 50k items, then HNSW, then IVF-PQ, rebuilt as it grows.",
    )
    metric: Literal["cosine", "ip", "l2"] = "cosine"


class IndexInfo(BaseModel):
    """The live index of a collection."""

    requested: str
    kind: str
    params: dict[str, Any]
    recall_at_10: float | None = Field(
        description="Measured against exact search when the index was last saved (1.0 for "
        "flat; null until an approximate index has been saved)."
    )


class CollectionPublic(BaseModel):
    """A collection and its statistics."""

    name: str
    model: str | None
    dim: int
    metric: str
    fingerprint: str
    count: int
    index: IndexInfo
    created_at: str


class CollectionList(BaseModel):
    """All collections."""

    collections: list[CollectionPublic]


# -- items ---------------------------------------------------------------------------------
class ItemCreate(_In):
    """An item: exactly one of ``text``, ``image`` (base64) or ``vector``."""

    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="External id; upserts replace by id. Default: the content's sha256.",
    )
    text: str | None = None
    image: str | None = Field(default=None, description="Base64 of a JPEG/PNG/WebP/GIF/BMP/TIFF.")
    vector: list[float] | None = Field(default=None, min_length=1, max_length=65_536)
    metadata: dict[str, Any] = Field(default_factory=dict)
    uri: str | None = Field(default=None, max_length=4096)

    @model_validator(mode="after")
    def _one_source(self) -> ItemCreate:
        given = [k for k in ("text", "image", "vector") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of text, image or vector (got {given or 'none'})")
        return self


class ItemsUpsert(_In):
    """A batch of items to upsert."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"id": "doc-1", "text": "a red square", "metadata": {"source": "demo"}},
                        {"id": "v-1", "vector": [0.1, 0.2, 0.3]},
                    ]
                }
            ]
        },
    )

    items: list[ItemCreate] = Field(min_length=1)


class DuplicateOf(BaseModel):
    """The stored item this one duplicates."""

    id: str
    kind: Literal["exact", "near"]
    score: float


class ItemStatus(BaseModel):
    """What happened to one item of a batch."""

    index: int
    id: str | None
    status: Literal["created", "updated", "unchanged", "error"]
    error: Problem | None = None
    duplicate_of: DuplicateOf | None = None


class ItemsUpsertResult(BaseModel):
    """Per-item statuses and totals."""

    items: list[ItemStatus]
    created: int
    updated: int
    unchanged: int
    errors: int


class ItemPublic(BaseModel):
    """A stored item."""

    id: str
    kind: str
    sha256: str
    text: str | None
    uri: str | None
    metadata: dict[str, Any]
    document_id: str | None
    created_at: str
    updated_at: str
    vector: list[float] | None = None


class ItemList(BaseModel):
    """A page of items; pass ``next`` as ``after`` for the next page."""

    items: list[ItemPublic]
    next: int | None


class ItemPatch(_In):
    """Metadata keys to set; a key set to null is removed."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"metadata": {"label": "cat"}}]}
    )

    metadata: dict[str, Any]


# -- search --------------------------------------------------------------------------------
class TermIn(_In):
    """One query term: exactly one source, with a signed weight (default 1)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"text": "a green triangle"}, {"item": "img-42", "weight": 1.0}]
        },
    )

    text: str | None = None
    image: str | None = Field(default=None, description="Base64 image.")
    item: str | None = Field(default=None, description="Id of a stored item.")
    vector: list[float] | None = Field(default=None, min_length=1, max_length=65_536)
    direction: str | None = Field(default=None, description="Name of a stored direction.")
    weight: float = Field(default=1.0, ge=-1e6, le=1e6, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_source(self) -> TermIn:
        kinds = ("text", "image", "item", "vector", "direction")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a term needs exactly one of {', '.join(kinds)} (got {given})")
        return self


class CompositeQuery(_In):
    """A weighted sum of terms."""

    terms: list[TermIn] = Field(min_length=1)


def _query_kind(value: Any) -> str:
    # Route the error to the model the caller meant: {terms: [...]} is a composite query.
    if isinstance(value, dict):
        return "composite" if "terms" in value else "single"
    return "composite" if isinstance(value, CompositeQuery) else "single"


class SearchParamsIn(_In):
    """Per-query index knobs (ignored by kinds they do not apply to)."""

    ef_search: int | None = Field(default=None, ge=1, le=4096)
    nprobe: int | None = Field(default=None, ge=1, le=65_536)


class SearchRequest(_In):
    """A search: one term or ``{terms: [...]}``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"query": {"text": "a green triangle"}, "k": 5},
                {
                    "query": {
                        "terms": [
                            {"item": "img-42"},
                            {"text": "red", "weight": -1},
                            {"text": "blue", "weight": 1},
                        ]
                    },
                    "k": 10,
                    "filter": {"shape": "triangle"},
                    "explain": True,
                },
            ]
        },
    )

    query: Annotated[
        Annotated[TermIn, Tag("single")] | Annotated[CompositeQuery, Tag("composite")],
        Discriminator(_query_kind),
    ]
    k: int = Field(default=10, ge=1)
    filter: dict[str, Any] | None = None
    min_score: float | None = Field(default=None, allow_inf_nan=False)
    offset: int = Field(default=0, ge=0, le=100_000)
    include: list[Include] = Field(default_factory=lambda: list(DEFAULT_INCLUDE))
    explain: bool = False
    params: SearchParamsIn | None = None
    exclude_query_items: bool = Field(
        default=True, description="Leave the items named by `item` terms out of the results."
    )


class SearchHit(BaseModel):
    """One result; the optional fields follow ``include``."""

    id: str
    score: float
    metadata: dict[str, Any] | None = None
    text: str | None = None
    uri: str | None = None
    document_id: str | None = None
    sha256: str | None = None
    vector: list[float] | None = None


class ExplainTerm(BaseModel):
    """A term's weight and the cosine between its vector and the final query."""

    term: str
    weight: float
    cosine: float


class SearchResult(BaseModel):
    """Results, best first."""

    results: list[SearchHit]
    explain: list[ExplainTerm] | None = None
    took_ms: float


class DirectionCreate(_In):
    """A named direction: mean(positive) − mean(negative)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "red-to-blue",
                    "positive": [{"text": "blue"}],
                    "negative": [{"text": "red"}],
                }
            ]
        },
    )

    name: str = Field(pattern=NAME_PATTERN)
    positive: list[TermIn] = Field(min_length=1)
    negative: list[TermIn] = Field(min_length=1)


class DirectionPublic(BaseModel):
    """A stored direction."""

    name: str
    norm: float
    definition: dict[str, Any]
    created_at: str


class DirectionList(BaseModel):
    """A collection's directions."""

    directions: list[DirectionPublic]


class PathRequest(_In):
    """A slerp walk from one term to another."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [{"from": {"item": "a"}, "to": {"item": "b"}, "steps": 6}]},
    )

    from_: TermIn = Field(alias="from")
    to: TermIn
    steps: int = Field(default=8, ge=2)
    filter: dict[str, Any] | None = None
    include: list[Include] = Field(default_factory=lambda: list(DEFAULT_INCLUDE))


class PathStepPublic(BaseModel):
    """One step: position ``t`` in [0, 1] and the nearest item not used before."""

    t: float
    item: SearchHit | None


class PathResult(BaseModel):
    """The walk."""

    steps: list[PathStepPublic]


# -- duplicates ----------------------------------------------------------------------------
class ClusterPublic(BaseModel):
    """Items that duplicate each other; ``score`` is the cosine to the first (oldest) item."""

    kind: Literal["exact", "near"]
    items: list[DuplicateOf]


class DuplicatesResult(BaseModel):
    """Duplicate clusters, largest first."""

    threshold: float
    clusters: list[ClusterPublic]


class DuplicateCheckRequest(_In):
    """A candidate (not stored): exactly one of image (base64), text or vector."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"image": "iVBORw0KGgo...", "k": 5}]}
    )

    image: str | None = None
    text: str | None = None
    vector: list[float] | None = Field(default=None, min_length=1, max_length=65_536)
    threshold: float | None = Field(default=None, gt=0.0, le=1.0)
    k: int = Field(default=10, ge=1, le=100)

    @model_validator(mode="after")
    def _one_source(self) -> DuplicateCheckRequest:
        given = [k for k in ("image", "text", "vector") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of image, text or vector (got {given or 'none'})")
        return self


class DuplicateCheckResult(BaseModel):
    """Whether the candidate is already stored."""

    duplicate: bool
    exact: list[str]
    near: list[DuplicateOf]
    threshold: float


# -- documents -----------------------------------------------------------------------------
class ChunkSpec(_In):
    """How documents are split."""

    size: int = Field(default=800, ge=1, le=100_000)
    overlap: int = Field(default=100, ge=0)
    unit: Literal["chars", "tokens"] = "chars"


class DocumentCreate(_In):
    """A document to chunk."""

    id: str = Field(min_length=1, max_length=200)
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentsCreate(_In):
    """Documents to chunk, embed and store."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "documents": [
                        {"id": "faq", "text": "Long text...", "metadata": {"lang": "en"}}
                    ],
                    "chunk": {"size": 500, "overlap": 50, "unit": "chars"},
                }
            ]
        },
    )

    documents: list[DocumentCreate] = Field(min_length=1)
    chunk: ChunkSpec = Field(default_factory=ChunkSpec)


class DocumentStatus(BaseModel):
    """What happened to one document's chunks."""

    id: str
    status: Literal["ok", "error"]
    chunks: int
    created: int
    updated: int
    unchanged: int
    removed: int
    error: Problem | None = None


class DocumentsResult(BaseModel):
    """Per-document statuses."""

    documents: list[DocumentStatus]
