"""RAG documents: chunking and per-document statuses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from latentspace.api.schemas.common import Problem, StrictModel

__all__ = [
    "ChunkSpec",
    "DocumentCreate",
    "DocumentStatus",
    "DocumentsCreate",
    "DocumentsResult",
]


class ChunkSpec(StrictModel):
    """How documents are split."""

    size: int = Field(default=800, ge=1, le=100_000, strict=True)
    overlap: int = Field(default=100, ge=0, le=100_000, strict=True)  # strict: `false` is no length
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
