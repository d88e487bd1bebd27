"""RAG documents: a document becomes chunk items that remember it.

Chunk ``i`` of document ``D`` is the item ``D#i`` with ``document_id = D`` and the chunk's
text; its metadata is the document's plus ``chunk``, ``start`` and ``end`` (character
offsets in the document). Posting a document again re-chunks it: unchanged chunks stay
unchanged, changed ones are re-embedded, and chunks past the new end are deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from latentspace import limits
from latentspace.embedder import Encoder, count_tokens, max_tokens
from latentspace.embedder.chunking import chunk_text
from latentspace.errors import InvalidInput, LatentspaceError, NotFound
from latentspace.service import collections, items
from latentspace.service.context import Context
from latentspace.service.encoders import require_encoder
from latentspace.service.intake import NewItem
from latentspace.store import lookups

__all__ = ["DocumentResult", "NewDocument", "delete", "ingest_documents"]


@dataclass(frozen=True)
class NewDocument:
    """A document to chunk and store."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentResult:
    """How a document was stored: its chunk count and what happened to them."""

    id: str
    chunks: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    error: LatentspaceError | None = None


def ingest_documents(
    ctx: Context,
    name: str,
    documents: Sequence[NewDocument],
    *,
    size: int,
    overlap: int,
    unit: str = "chars",
) -> list[DocumentResult]:
    """Chunk, embed and store ``documents``; one result per document, in order.

    Raises:
        NotFound: no such collection.
        InvalidInput: bad chunking parameters, a repeated document id, or a collection
            whose model cannot embed text.
        LimitExceeded: too many documents, or chunks larger than ``max_text_chars``.
    """
    limit = ctx.settings.limits
    limits.check_batch(limit, documents, "documents")
    if unit == "chars":
        limits.check(limit, "max_text_chars", size, "characters", "chunk size")
    ids = [d.id for d in documents]
    if len(set(ids)) != len(ids):
        raise InvalidInput("a document id appears twice in one request")
    collection = collections.get(ctx, name)
    encoder = require_encoder(collections.encoder_of(ctx, collection), collection, "text")
    chunk_text("", size=size, overlap=overlap, unit=unit, count_tokens=len)  # checks arguments
    results = []
    for doc in documents:
        try:
            results.append(_one(ctx, name, doc, size, overlap, unit, encoder))
        except LatentspaceError as e:
            results.append(DocumentResult(doc.id, error=e))
    return results


def _one(
    ctx: Context,
    name: str,
    doc: NewDocument,
    size: int,
    overlap: int,
    unit: str,
    encoder: Encoder,
) -> DocumentResult:
    limit = ctx.settings.limits
    if len(doc.id) > 200:  # its chunks' ids, "{id}#{i}", must stay within 256
        raise InvalidInput(f"document id must be 1-200 characters, got {len(doc.id)}")
    limits.check_id(doc.id, name="document id")
    limits.check_string(doc.text, name=f"document {doc.id!r} text")
    limits.check_json(limit, doc.metadata, name=f"document {doc.id!r} metadata")
    limits.check(limit, "max_documents_chars", len(doc.text), "characters", f"document {doc.id!r}")
    chunks = chunk_text(
        doc.text,
        size=size,
        overlap=overlap,
        unit=unit,
        count_tokens=lambda text: count_tokens(encoder, text),
        max_tokens=max_tokens(encoder),  # a chunk past the model's window is cut again
    )
    if not chunks:
        raise InvalidInput(f"document {doc.id!r} has no text")
    chunk_items = [
        NewItem(
            id=f"{doc.id}#{i}",
            text=c.text,
            metadata={**doc.metadata, "chunk": i, "start": c.start, "end": c.end},
            document_id=doc.id,
        )
        for i, c in enumerate(chunks)
    ]
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for start in range(0, len(chunk_items), limit.max_batch):
        for result in items.ingest(
            ctx, name, chunk_items[start : start + limit.max_batch], report_duplicates=False
        ):
            if result.error is not None:
                raise result.error
            counts[result.status] += 1
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        stored = lookups.document_items(
            session=session, collection=collection, document_ids=[doc.id]
        )
    keep = {item.id for item in chunk_items}
    stale = [row.external_id for row in stored if row.external_id not in keep]
    removed = items.delete(ctx, name, stale) if stale else 0
    return DocumentResult(
        doc.id,
        len(chunks),
        created=counts["created"],
        updated=counts["updated"],
        unchanged=counts["unchanged"],
        removed=removed,
    )


def delete(ctx: Context, name: str, document_id: str) -> int:
    """Soft-delete every chunk of a document; returns how many were live.

    Raises:
        NotFound: no such collection, or no live chunk of that document.
    """
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        rows = lookups.document_items(
            session=session, collection=collection, document_ids=[document_id]
        )
    removed = items.delete(ctx, name, [row.external_id for row in rows]) if rows else 0
    if not removed:
        raise NotFound(f"document {document_id!r} not found in collection {name!r}")
    return removed
