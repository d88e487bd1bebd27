"""Duplicates and RAG documents."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from latentspace.api.schemas.common import Problem, StrictModel
from latentspace.api.schemas.items import DuplicateOf
from latentspace.types import DuplicateKind

__all__ = [
    "ChunkSpec",
    "ClusterPublic",
    "DocumentCreate",
    "DocumentStatus",
    "DocumentsCreate",
    "DocumentsResult",
    "DuplicateCheckRequest",
    "DuplicateCheckResult",
    "DuplicatesResult",
]


class ClusterPublic(BaseModel):
    """Items that duplicate each other; ``score`` is the cosine to the first (oldest) item."""

    kind: DuplicateKind
    items: list[DuplicateOf]


class DuplicatesResult(BaseModel):
    """Duplicate clusters, largest first."""

    threshold: float
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


class ChunkSpec(StrictModel):
    """How documents are split."""

    size: int = Field(default=800, ge=1, le=100_000)
    overlap: int = Field(default=100, ge=0)
    unit: Literal["chars", "tokens"] = "chars"


class DocumentCreate(StrictModel):
    """A document to chunk."""

    id: str = Field(min_length=1, max_length=200)
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentsCreate(StrictModel):
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
