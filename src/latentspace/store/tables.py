"""SQLAlchemy 2 tables: the source of truth for collections, items, vectors and the oplog."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "AdapterRow",
    "Base",
    "CollectionRow",
    "DirectionRow",
    "IndexManifestRow",
    "ItemRow",
    "ItemVectorRow",
    "JobRow",
    "MigrationVectorRow",
    "OplogRow",
    "StoredInt",
    "as_utc",
    "utcnow",
]

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class StoredInt(TypeDecorator[int]):
    """A BIGINT read back leniently: SQLite keeps whatever a hand edit wrote, so a value
    that is not an integer (``'abc'``, 1.5) reads as None, the row's other fields intact,
    instead of failing every query that reads it (``service.integrity`` names and clears
    such values)."""

    impl = BigInteger
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> int | None:
        if value is None or type(value) is int:
            return value
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            return None
        return number if number == value or isinstance(value, str) else None


def utcnow() -> datetime:
    """Timezone-aware now, for timestamps."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A timestamp read back from SQL, with its zone (SQLite hands them back without one;
    they were written in UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of every latentspace table."""


class CollectionRow(Base):
    """A collection: one encoder, one dim, one index, for life."""

    __tablename__ = "collections"
    # Ids are never reused (SQLite would hand out a deleted row's id again): what is kept
    # by collection id, in files or in another process's memory, never outlives its row.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    model: Mapped[str | None] = mapped_column(String(512))
    dim: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(16), default="cosine")
    index_kind: Mapped[str] = mapped_column(String(32), default="auto")
    index_params: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    # how the keyword leg analyses text (stemmer, stop words, BM25 k1/b); null: defaults
    keyword: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, nullable=True)
    # items written without an expiry get one this many seconds after the write
    ttl_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ItemRow(Base):
    """One item (an image, a text, a chunk or a raw vector) with its metadata."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("collection_id", "external_id", name="uq_items_collection_external"),
        Index("ix_items_collection_sha256", "collection_id", "sha256"),
        Index("ix_items_collection_document", "collection_id", "document_id"),
        Index("ix_items_collection_expires", "collection_id", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    external_id: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonDoc, default=dict)
    document_id: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # an image's 64-bit perceptual hash (pHash) as a signed integer; null for other kinds
    phash: Mapped[int | None] = mapped_column(StoredInt, nullable=True)
    # an image's decoded size and its file's size: what the keep suggestion compares
    pixels: Mapped[int | None] = mapped_column(StoredInt, nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(StoredInt, nullable=True)
    # set when a duplicate resolution moved the item to the trash (deleted, restorable)
    trashed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # when the item stops being served (reads skip it at once; the sweep deletes it)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ItemVectorRow(Base):
    """An item's vector as float32 bytes, so index rebuilds never re-encode."""

    __tablename__ = "item_vectors"

    item_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    # CRC-32 of ``vector``, checked whenever it is read back (null: written before 0002)
    checksum: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class OplogRow(Base):
    """Every write to a collection's items, in commit order; the index replays it."""

    __tablename__ = "oplog"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    op: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IndexManifestRow(Base):
    """What the last saved index of a collection holds (mirrors its manifest.json)."""

    __tablename__ = "index_manifests"

    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    count: Mapped[int] = mapped_column(BigInteger)
    oplog_seq: Mapped[int] = mapped_column(BigInteger)
    recall_at_10: Mapped[float | None] = mapped_column()
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DirectionRow(Base):
    """A named direction in a collection's space: mean(positive) − mean(negative)."""

    __tablename__ = "directions"
    __table_args__ = (UniqueConstraint("collection_id", "name", name="uq_directions_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    definition: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobRow(Base):
    """A background job on a collection (auto-tagging, say) and how far it has got.

    ``cursor`` is the last item id the job has finished with, so a restarted server resumes
    after it; ``state`` is one of queued, running, done, failed or cancelled.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class MigrationVectorRow(Base):
    """An item's vector in the space a migration job moves its collection to, and the
    content (sha256) it was encoded from; swapped in, then deleted, when the job ends."""

    __tablename__ = "migration_vectors"

    job_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    sha256: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class AdapterRow(Base):
    """A fitted map from one model's space (``source_fingerprint``) into the collection's
    (``target_fingerprint``): ``unit(x @ matrix + bias)``, float32 bytes, row-major."""

    __tablename__ = "adapters"
    __table_args__ = (
        UniqueConstraint(
            "collection_id", "source_fingerprint", "target_fingerprint", name="uq_adapters_pair"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    source_model: Mapped[str | None] = mapped_column(String(512))
    source_fingerprint: Mapped[str] = mapped_column(String(64))
    target_fingerprint: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    dim_in: Mapped[int] = mapped_column(Integer)
    dim_out: Mapped[int] = mapped_column(Integer)
    matrix: Mapped[bytes] = mapped_column(LargeBinary)
    bias: Mapped[bytes] = mapped_column(LargeBinary)
    # share of a full re-encode's top-10 the adapted vectors find, on held-out items
    recall_at_10: Mapped[float | None] = mapped_column(Float, nullable=True)
    fitted_on: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
