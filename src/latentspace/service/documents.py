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
    chunked: dict[str, list[NewItem]] = {}
    errors: dict[str, LatentspaceError] = {}
    for doc in documents:
        try:
            chunked[doc.id] = _chunk_items(ctx, doc, size, overlap, unit, encoder)
        except LatentspaceError as e:
            errors[doc.id] = e
    counts = _store(ctx, name, chunked, errors)
    removed = _remove_stale(ctx, name, {d: c for d, c in chunked.items() if d not in errors})
    out = []
    for doc in documents:
        if doc.id in errors:
            out.append(DocumentResult(doc.id, error=errors[doc.id]))
            continue
        n = counts[doc.id]
        out.append(
            DocumentResult(
                doc.id,
                len(chunked[doc.id]),
                created=n["created"],
                updated=n["updated"],
                unchanged=n["unchanged"],
                removed=removed.get(doc.id, 0),
            )
        )
    return out


def _chunk_items(
    ctx: Context, doc: NewDocument, size: int, overlap: int, unit: str, encoder: Encoder
) -> list[NewItem]:
    # One document checked and cut into its chunk items.
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
    return [
        NewItem(
            id=f"{doc.id}#{i}",
            text=c.text,
            metadata={**doc.metadata, "chunk": i, "start": c.start, "end": c.end},
            document_id=doc.id,
        )
        for i, c in enumerate(chunks)
    ]


def _store(
    ctx: Context,
    name: str,
    chunked: dict[str, list[NewItem]],
    errors: dict[str, LatentspaceError],
) -> dict[str, dict[str, int]]:
    # Every document's chunks together, max_batch at a time: one encode and one transaction
    # per batch, not per document (a request of many short documents was ~10x slower per
    # chunk than the same texts as items). A chunk that fails fails its document.
    counts = {d: {"created": 0, "updated": 0, "unchanged": 0} for d in chunked}
    owner = {item.id: d for d, chunk_items in chunked.items() for item in chunk_items}
    every = [item for chunk_items in chunked.values() for item in chunk_items]
    batch = ctx.settings.limits.max_batch
    for start in range(0, len(every), batch):
        part = every[start : start + batch]
        for result in items.ingest(ctx, name, part, report_duplicates=False):
            doc = owner[str(part[result.index].id)]
            if result.error is not None:
                errors.setdefault(doc, result.error)
            elif result.status in counts[doc]:
                counts[doc][result.status] += 1
    return counts


def _remove_stale(ctx: Context, name: str, chunked: dict[str, list[NewItem]]) -> dict[str, int]:
    # The chunks past each document's new end, deleted in one write; how many per document.
    if not chunked:
        return {}
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        stored = lookups.document_items(
            session=session, collection=collection, document_ids=list(chunked)
        )
    keep = {item.id for chunk_items in chunked.values() for item in chunk_items}
    stale = [row for row in stored if row.external_id not in keep]
    if not stale:
        return {}
    items.delete(ctx, name, [row.external_id for row in stale])
    removed: dict[str, int] = {}
    for row in stale:
        removed[str(row.document_id)] = removed.get(str(row.document_id), 0) + 1
    return removed


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
