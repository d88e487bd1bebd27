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

from latentspace.embedder import count_tokens
from latentspace.errors import InvalidInput, LatentspaceError, LimitExceeded
from latentspace.service.chunking import chunk_text
from latentspace.service.embedding import require_encoder
from latentspace.service.ingest import NewItem, ingest
from latentspace.service.space import LatentSpace
from latentspace.store import repository as repo

__all__ = ["DocumentResult", "NewDocument", "ingest_documents"]


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
    space: LatentSpace,
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
    limits = space.settings.limits
    if len(documents) > limits.max_batch:
        raise LimitExceeded(f"{len(documents)} documents, over the limit of {limits.max_batch}")
    if unit == "chars" and size > limits.max_text_chars:
        raise LimitExceeded(f"chunk size {size} is over the text limit of {limits.max_text_chars}")
    ids = [d.id for d in documents]
    if len(set(ids)) != len(ids):
        raise InvalidInput("a document id appears twice in one request")
    collection = space.collection(name)
    encoder = require_encoder(space.encoder_for(collection), collection, "text")
    chunk_text("", size=size, overlap=overlap, unit=unit, count_tokens=len)  # checks arguments
    results = []
    for doc in documents:
        try:
            results.append(_one(space, name, doc, size, overlap, unit, encoder))
        except LatentspaceError as e:
            results.append(DocumentResult(doc.id, error=e))
    return results


def _one(
    space: LatentSpace,
    name: str,
    doc: NewDocument,
    size: int,
    overlap: int,
    unit: str,
    encoder: object,
) -> DocumentResult:
    limits = space.settings.limits
    if not doc.id or len(doc.id) > 200:
        raise InvalidInput(f"document id must be 1-200 characters, got {len(doc.id)}")
    if len(doc.text) > limits.max_documents_chars:
        raise LimitExceeded(
            f"document {doc.id!r} has {len(doc.text)} characters, over the limit of "
            f"{limits.max_documents_chars}"
        )
    chunks = chunk_text(
        doc.text,
        size=size,
        overlap=overlap,
        unit=unit,
        count_tokens=lambda text: count_tokens(encoder, text),
    )
    if not chunks:
        raise InvalidInput(f"document {doc.id!r} has no text")
    items = [
        NewItem(
            id=f"{doc.id}#{i}",
            text=c.text,
            metadata={**doc.metadata, "chunk": i, "start": c.start, "end": c.end},
            document_id=doc.id,
        )
        for i, c in enumerate(chunks)
    ]
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for start in range(0, len(items), limits.max_batch):
        for result in ingest(
            space, name, items[start : start + limits.max_batch], report_duplicates=False
        ):
            if result.error is not None:
                raise result.error
            counts[result.status] += 1
    collection = space.collection(name)
    with space.sessions() as session:
        stored = repo.document_items(session=session, collection=collection, document_ids=[doc.id])
    keep = {item.id for item in items}
    stale = [row.external_id for row in stored if row.external_id not in keep]
    removed = space.delete(name, stale) if stale else 0
    return DocumentResult(
        doc.id,
        len(chunks),
        created=counts["created"],
        updated=counts["updated"],
        unchanged=counts["unchanged"],
        removed=removed,
    )
