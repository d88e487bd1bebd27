"""Collections: create, and what a collection reports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from latentspace.api.schemas.common import NAME_PATTERN, StrictModel
from latentspace.types import IndexChoice, Metric

__all__ = [
    "CollectionCreate",
    "CollectionList",
    "CollectionPublic",
    "IndexInfo",
    "KeywordSettings",
    "SnapshotRequest",
    "SnapshotRestore",
    "SnapshotSaved",
    "SnapshotUploaded",
]

# A snapshot file's name in the server's snapshot folder: no folders, no leading dot.
SNAPSHOT_FILE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$"
# s3:// + a bucket name (63) + / + a key (1024 bytes) with room for multi-byte characters
S3_URL_MAX_LENGTH = 2048


MAX_TTL_SECONDS = 10 * 366 * 86_400  # ten years
TTL_DOC = (
    "Items written without an `expires_at` expire this many seconds after the write (reads "
    "skip them from then on; a sweep deletes them). Null: they never expire."
)


class KeywordSettings(StrictModel):
    """How the keyword (BM25) leg analyses the collection's text."""

    stemmer: str | None = Field(
        default="english",
        max_length=64,
        description="A Snowball stemmer (`english`, `german`, `french`, ...); null: none.",
    )
    stopwords: str | list[Annotated[str, Field(max_length=64)]] | None = Field(
        default="en",
        max_length=10_000,
        description="A language code (en, de, nl, fr, es, pt, it, ru, sv, no, zh, tr, ko, "
        "da), your own list of words, or null to keep every word.",
    )
    k1: float = Field(default=1.2, gt=0, le=10, description="BM25 term-frequency saturation.")
    b: float = Field(default=0.75, ge=0, le=1, description="BM25 length normalisation.")


QuantizationChoice = Literal["auto", "none", "fp16", "sq8", "binary"]
QUANTIZATION_DOC = (
    "How the index stores rows: none (float32), fp16 (half), sq8 (a byte a dimension), "
    "binary (a bit a dimension; cosine or ip, dim divisible by 8); auto = float32 below a "
    "million vectors, sq8 from there. Searches over codes are rescored against the float32 "
    "vectors kept in SQL, so scores stay exact."
)
RESCORE_DOC = (
    "Quantized indexes: candidates fetched per wanted hit and rescored exactly "
    "(default by quantization: fp16 1, sq8 2, binary 16)."
)
RECALL_TARGET_DOC = (
    "recall@10 the approximate index must hold; the save-time check measures it against "
    "exact search and a collection below it says so here and in /readyz."
)


class CollectionCreate(StrictModel):
    """A new collection: a model's space, or raw vectors of ``dim`` (one of the two is
    required)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # A model (its space fixes the dim), or a dim for raw vectors.
            "anyOf": [{"required": ["model"]}, {"required": ["dim"]}],
            "examples": [
                {"name": "photos", "model": "tiny-shapes"},
                {"name": "rag", "model": "st:/models/all-MiniLM-L6-v2", "index": "hnsw"},
                {"name": "raw", "dim": 128, "metric": "cosine"},
            ],
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
    index: IndexChoice = Field(
        default="auto",
        description="auto = exact below 50k items, then HNSW, then IVF-PQ, rebuilt as it grows.",
    )
    metric: Metric = "cosine"
    keyword: KeywordSettings | None = Field(
        default=None, description="Keyword-leg analysis; omitted: English stemming and stop words."
    )
    quantization: QuantizationChoice = Field(default="auto", description=QUANTIZATION_DOC)
    rescore: int | None = Field(default=None, ge=1, le=100, description=RESCORE_DOC)
    recall_target: float = Field(default=0.95, gt=0, le=1, description=RECALL_TARGET_DOC)
    ttl_seconds: int | None = Field(default=None, ge=1, le=MAX_TTL_SECONDS, description=TTL_DOC)


class CollectionPatch(StrictModel):
    """New code settings for a collection; the index is rebuilt under them in the
    background while the current one keeps answering. Fields left out stay as they are."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"quantization": "sq8"}, {"quantization": "binary", "rescore": 16}]
        },
    )

    quantization: QuantizationChoice | None = Field(default=None, description=QUANTIZATION_DOC)
    rescore: int | None = Field(default=None, ge=1, le=100, description=RESCORE_DOC)
    recall_target: float | None = Field(default=None, gt=0, le=1, description=RECALL_TARGET_DOC)


class IndexInfo(BaseModel):
    """The live index of a collection."""

    requested: str
    kind: str
    params: dict[str, Any]
    quantization: str = Field(
        description="How the live index stores its rows: none (float32), fp16, sq8, binary."
    )
    quantization_requested: QuantizationChoice = Field(description=QUANTIZATION_DOC)
    rescore: int | None = Field(
        description="Candidates per wanted hit rescored against float32 (null: not quantized)."
    )
    bytes: int = Field(description="Resident bytes of the index: codes, graph links, id maps.")
    recall_target: float = Field(description=RECALL_TARGET_DOC)
    rebuilding: bool = Field(
        description="A rebuild (new settings, growth, compaction) runs in the background; "
        "the current index answers until the swap."
    )
    below_target: bool = Field(
        description="Whether recall_at_10, measured at the last save, is below recall_target."
    )
    recall_at_10: float | None = Field(
        description="Measured against exact search when the index was last saved (1.0 for "
        "flat; null until an approximate index has been saved)."
    )
    unavailable: str | None = Field(
        default=None, description="Why the index cannot serve (kind is then `unavailable`)."
    )
    exact_limit: int | None = Field(
        default=None,
        description="`auto` collections: exact search below this many vectors, HNSW beyond "
        "(from exact search's cost measured on this machine, or the pinned setting).",
    )


class PayloadIndexInfo(BaseModel):
    """The in-memory index that answers metadata filters (every path is indexed)."""

    items: int = Field(description="Items it holds (every live item).")
    paths: int = Field(description="Distinct metadata paths indexed (nested ones included).")
    memory_bytes: dict[str, int] = Field(
        description="Estimated memory per path (dotted), largest first."
    )
    total_bytes: int = Field(description="Their sum.")


class CollectionPublic(BaseModel):
    """A collection and its statistics."""

    name: str
    model: str | None
    dim: int
    metric: str
    fingerprint: str
    count: int
    index: IndexInfo
    keyword: KeywordSettings
    created_at: str
    ttl_seconds: int | None = Field(default=None, description=TTL_DOC)
    payload_index: PayloadIndexInfo | None = Field(
        default=None,
        description="Null until built: in the background after a start, or by the first filter.",
    )


class CollectionList(BaseModel):
    """All collections."""

    collections: list[CollectionPublic]


class SnapshotRequest(StrictModel):
    """Where a snapshot goes: omit ``file`` and ``target`` to receive it as the response
    body."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {},
                {"file": "photos-nightly.lsnap"},
                {"target": "s3://my-backups/photos/2024-06-01.lsnap"},
                {"originals": False},
            ]
        },
    )

    file: str | None = Field(
        default=None,
        pattern=SNAPSHOT_FILE_PATTERN,
        description="Save it under this name in the server's snapshot folder instead "
        "(replacing a file of that name).",
    )
    target: str | None = Field(
        default=None,
        max_length=S3_URL_MAX_LENGTH,
        description="Upload it to this object (`s3://bucket/key`, replaced if it exists) in "
        "the S3-compatible store the server's LATENTSPACE_BACKUP__ settings name.",
    )
    originals: StrictBool | None = Field(
        default=None,
        description="Carry each image's stored original (default: when the collection holds "
        "images), so a restore on another machine can serve, re-encode and migrate them.",
    )

    @model_validator(mode="after")
    def _one_place(self) -> SnapshotRequest:
        if self.file is not None and self.target is not None:
            raise ValueError("give file (the server's snapshot folder) or target (s3://), not both")
        return self


class SnapshotSaved(BaseModel):
    """A snapshot written on the server."""

    file: str
    bytes: int
    manifest: dict[str, Any]


class SnapshotUploaded(BaseModel):
    """A snapshot uploaded to S3-compatible storage."""

    target: str = Field(description="The object it went to (`s3://bucket/key`).")
    bytes: int
    manifest: dict[str, Any]


class SnapshotRestore(StrictModel):
    """A snapshot to restore: a file in the server's snapshot folder, or an object in
    S3-compatible storage (one of the two)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"file": "photos-nightly.lsnap"},
                {"file": "photos-nightly.lsnap", "replace": True},
                {"source": "s3://my-backups/photos/2024-06-01.lsnap"},
            ],
            "anyOf": [{"required": ["file"]}, {"required": ["source"]}],
        },
    )

    file: str | None = Field(
        default=None, pattern=SNAPSHOT_FILE_PATTERN, description="Its name in that folder."
    )
    source: str | None = Field(
        default=None,
        max_length=S3_URL_MAX_LENGTH,
        description="The object (`s3://bucket/key`) in the store the server's "
        "LATENTSPACE_BACKUP__ settings name; downloaded and verified whole first.",
    )
    replace: bool = Field(
        default=False, description="Replace a collection of that name (in one transaction)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> SnapshotRestore:
        if (self.file is None) == (self.source is None):
            raise ValueError(
                "give file (in the server's snapshot folder) or source (s3://bucket/key): one"
            )
        return self
