"""Items: upsert batches, per-item statuses, stored items, hash lookups."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from latentspace.api.schemas.common import Problem, StrictModel
from latentspace.limits import MAX_URI_CHARS
from latentspace.types import DuplicateAction, DuplicateTier
from latentspace.types import ItemStatus as ItemStatusName

__all__ = [
    "DuplicateOf",
    "DuplicatePolicyIn",
    "HashLookup",
    "HashLookupResult",
    "ItemCreate",
    "ItemList",
    "ItemPatch",
    "ItemPublic",
    "ItemStatus",
    "ItemsCount",
    "ItemsCountResult",
    "ItemsDelete",
    "ItemsDeleteResult",
    "ItemsGet",
    "ItemsGetResult",
    "ItemsScroll",
    "ItemsUpsert",
    "ItemsUpsertResult",
    "VectorColumns",
    "VectorsUpsert",
]


class ItemCreate(StrictModel):
    """An item: exactly one of ``text``, ``image`` (base64) or ``vector``; or a ``vector``
    with the ``text`` it was embedded from (kept for keyword search and returned with
    hits, never encoded by the server)."""

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
    uri: str | None = Field(default=None, max_length=MAX_URI_CHARS)
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the item stops being served (ISO 8601 with its zone, in the "
        "future); reads skip it from then on and a sweep deletes it. Default: the "
        "collection's `ttl_seconds` after the write, if it has one, else never.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ItemCreate:
        given = [k for k in ("text", "image", "vector") if getattr(self, k) is not None]
        if len(given) != 1 and given != ["text", "vector"]:
            raise ValueError(
                "give exactly one of text, image or vector, or a vector with its text "
                f"(got {given or 'none'})"
            )
        return self


class DuplicatePolicyIn(StrictModel):
    """What to do with a duplicate, per tier: `store` it (and say what it duplicates),
    `skip` it (status `skipped`, nothing written for it) or `reject` the whole request
    (409, nothing written)."""

    identical: DuplicateAction = "store"
    same_image: DuplicateAction = "store"
    similar: DuplicateAction = "store"


_ON_DUPLICATE = Field(
    default=None,
    description="`store` (default), `skip` or `reject` for every tier, or one per tier, e.g. "
    '`{"identical": "skip", "same_image": "skip"}`. An item is compared with the stored items '
    "and the earlier items of its batch: the first occurrence is the original.",
)


class ItemsUpsert(StrictModel):
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
    on_duplicate: DuplicateAction | DuplicatePolicyIn | None = _ON_DUPLICATE


class VectorColumns(StrictModel):
    """Per-row columns of a bulk vector write (multipart form fields carry them as JSON)."""

    ids: list[str] | None = Field(
        default=None, description="One id per row. Default: each row's content sha256."
    )
    metadata: dict[str, Any] | list[dict[str, Any]] | None = Field(
        default=None, description="One object for every row, or a list of one per row."
    )
    uris: list[str | None] | None = Field(default=None, description="One uri per row.")


class VectorsUpsert(VectorColumns):
    """Many vectors in one body, as columns: base64 float32 (or nested lists) and per-row ids."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"ids": ["a", "b"], "vectors": "AACAPwAAAAAAAAAAAACAPw==", "metadata": {}}]
        },
    )

    vectors: str | list[list[float]] = Field(
        description="Base64 of the rows' float32 little-endian bytes, row-major, `dim` values "
        "a row (NumPy: `base64.b64encode(x.astype('<f4').tobytes())`); or a list of lists."
    )


class DuplicateOf(BaseModel):
    """An item this one duplicates: the tier and the evidence (cosine of the vectors; bits
    between the perceptual hashes when both are images)."""

    id: str
    tier: DuplicateTier
    cosine: float | None
    hamming: int | None


class ItemStatus(BaseModel):
    """What happened to one item of a batch."""

    index: int
    id: str | None
    status: ItemStatusName
    error: Problem | None = None
    duplicate_of: DuplicateOf | None = None


class ItemsUpsertResult(BaseModel):
    """Per-item statuses and totals."""

    items: list[ItemStatus]
    created: int
    updated: int
    unchanged: int
    skipped: int = 0
    errors: int
    seq: int = Field(
        default=0,
        description="The oplog sequence the write is visible at: pass it as a search's "
        "`consistency.min_seq` to read it back from any worker or host.",
    )


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
    expires_at: str | None = None
    vector: list[float] | None = None


class ItemList(BaseModel):
    """A page of items; pass ``next`` as ``after`` for the next page."""

    items: list[ItemPublic]
    next: int | None


class ItemPatch(StrictModel):
    """Metadata keys to set; a key set to null is removed."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"metadata": {"label": "cat"}}]}
    )

    metadata: dict[str, Any]


class HashLookup(StrictModel):
    """Content hashes to look up."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"sha256": ["ab" * 32]}]}
    )

    sha256: list[str] = Field(min_length=1)


class HashLookupResult(BaseModel):
    """The ids of live items holding each hash that is stored (absent hashes are left out)."""

    found: dict[str, list[str]]


_ID = Field(min_length=1, max_length=256)


class ItemsGet(StrictModel):
    """Items to read by id."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"ids": ["doc-1", "v-1"]}]}
    )

    ids: list[Annotated[str, _ID]] = Field(min_length=1)
    include_vector: bool = Field(default=False, strict=True)


class ItemsGetResult(BaseModel):
    """The stored items among the ids asked (in their order) and the ids not stored."""

    items: list[ItemPublic]
    missing: list[str]


class ItemsDelete(StrictModel):
    """Items to delete: by ``ids``, or every item that passes ``filter`` (one of the two)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"ids": ["doc-1", "doc-2"]}, {"filter": {"document_id": "manual"}}]
        },
    )

    ids: list[Annotated[str, _ID]] | None = Field(default=None, min_length=1)
    filter: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> ItemsDelete:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of ids or filter")
        return self


class ItemsDeleteResult(BaseModel):
    """How many live items were deleted, and the ids asked that were not live (no error:
    deleting twice is deleting once)."""

    deleted: int
    missing: list[str]
    seq: int = Field(default=0, description="The oplog sequence the delete is visible at.")


class ItemsScroll(StrictModel):
    """A page of the items that pass ``filter`` (all without one), in id order."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"filter": {"source": "demo"}, "limit": 100}]},
    )

    filter: dict[str, Any] | None = None
    limit: int = Field(default=100, ge=1, le=1000, strict=True)
    after: int = Field(
        default=0, ge=0, le=2**62, strict=True, description="`next` of the previous page."
    )
    include_vector: bool = Field(default=False, strict=True)


class ItemsCount(StrictModel):
    """Count the items that pass ``filter`` (all without one)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"filter": {"source": "demo"}}]}
    )

    filter: dict[str, Any] | None = None


class ItemsCountResult(BaseModel):
    """How many live items pass the filter."""

    count: int
