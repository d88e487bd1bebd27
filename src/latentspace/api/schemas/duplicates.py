"""Duplicates: clusters, the check of a candidate, resolution and the trash."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from latentspace.api.schemas.common import StrictModel
from latentspace.api.schemas.items import DuplicateOf
from latentspace.types import DuplicateTier

__all__ = [
    "ClusterMemberPublic",
    "ClusterPublic",
    "DuplicateCheckRequest",
    "DuplicateCheckResult",
    "DuplicatesResult",
    "ResolveRequest",
    "ResolveResult",
    "RestoreRequest",
    "RestoreResult",
    "TierName",
    "TrashList",
    "TrashedPublic",
]

# the duplicate tiers, strongest first, as a query parameter names them
TierName = DuplicateTier


class ClusterMemberPublic(BaseModel):
    """A member and its evidence against the representative (the representative's own
    entry: `tier` null, cosine 1, 0 bits); pixels, bytes and metadata keys are what the
    keep suggestion compares."""

    id: str
    tier: DuplicateTier | None
    cosine: float
    hamming: int | None
    uri: str | None
    pixels: int | None
    size_bytes: int | None
    metadata_keys: int


class ClusterPublic(BaseModel):
    """A representative (the oldest) and the items that duplicate it; `tier` is the
    weakest tier among them; `keep` the suggested item to keep (most pixels, then bytes,
    then metadata)."""

    representative: str
    keep: str
    tier: DuplicateTier
    members: list[ClusterMemberPublic]


class DuplicatesResult(BaseModel):
    """Duplicate clusters, largest first, and the cuts they were found with."""

    threshold: float
    hamming: int
    tier: DuplicateTier
    clusters: list[ClusterPublic]


# a whole 1 x 1 PNG, so the example is one a client can send as it stands
_RED_PIXEL_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


class DuplicateCheckRequest(StrictModel):
    """A candidate (not stored): exactly one of image (base64), text or vector."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"image": _RED_PIXEL_PNG, "k": 5}]}
    )

    image: str | None = None
    text: str | None = None
    vector: list[float] | None = Field(default=None, min_length=1, max_length=65_536)
    threshold: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Cosine of the `similar` tier."
    )
    hamming: int | None = Field(
        default=None, ge=0, le=20, strict=True, description="Bits of the `same_image` tier."
    )
    k: int = Field(default=10, ge=1, le=100, description="Most findings returned.")

    @model_validator(mode="after")
    def _one_source(self) -> DuplicateCheckRequest:
        given = [k for k in ("image", "text", "vector") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of image, text or vector (got {given or 'none'})")
        return self


class DuplicateCheckResult(BaseModel):
    """Whether the candidate is already stored, and as what: findings strongest first."""

    duplicate: bool
    findings: list[DuplicateOf]
    threshold: float
    hamming: int


class ResolveRequest(StrictModel):
    """Keep some items of a cluster and move the others to the trash."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"keep": ["beach.jpg"], "trash": ["beach (1).jpg"], "merge_metadata": True}
            ]
        },
    )

    keep: list[str] = Field(default_factory=list, description="Items to keep.")
    trash: list[str] = Field(min_length=1, description="Items to move to the trash.")
    merge_metadata: bool = Field(
        default=False,
        description="First give every kept item the trashed items' metadata keys it lacks.",
    )


class ResolveResult(BaseModel):
    """What was kept and trashed, and until when the trashed items can be restored."""

    kept: list[str]
    trashed: list[str]
    restorable_until: str


class TrashedPublic(BaseModel):
    """An item in the trash."""

    id: str
    uri: str | None
    trashed_at: str
    restorable_until: str


class TrashList(BaseModel):
    """A page of the trash (restorable items, id order) and the next page's cursor."""

    items: list[TrashedPublic]
    next: int | None


class RestoreRequest(StrictModel):
    """Items to bring back from the trash."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"ids": ["beach (1).jpg"]}]}
    )

    ids: list[str] = Field(min_length=1)


class RestoreResult(BaseModel):
    """The items restored."""

    restored: list[str]
