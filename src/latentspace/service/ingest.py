"""Ingest: texts, image bytes and raw vectors become stored, indexed items.

Each item is checked and embedded on its own, so one corrupt image in a batch of a thousand
is reported as that item's error and the rest are stored. Items whose id already holds the
same content reuse the stored vector instead of being re-encoded, which makes re-running an
ingest cheap. After the write, each new vector is checked against the collection: the answer
says when an item duplicates another, exactly (same sha256) or nearly (cosine ≥ threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL.Image import Image

from latentspace.errors import EncoderError, InvalidInput, LatentspaceError, LimitExceeded
from latentspace.index.algebra import as_vector
from latentspace.index.persist import atomic_write
from latentspace.service.embedding import (
    check_text,
    content_sha256,
    decode_checked,
    require_encoder,
)
from latentspace.service.space import LatentSpace
from latentspace.store import repository as repo
from latentspace.store.repository import ItemInput
from latentspace.store.tables import CollectionRow

__all__ = ["Duplicate", "ItemResult", "NewItem", "blob_path", "ingest", "read_blob"]

SOURCES = ("text", "image", "vector")


@dataclass(frozen=True)
class NewItem:
    """An item to store: exactly one of ``text``, ``image`` (bytes) or ``vector``.

    Without an ``id`` the content's sha256 is used, so sending the same content twice
    stores it once.
    """

    id: str | None = None
    text: str | None = None
    image: bytes | None = None
    vector: Sequence[float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    uri: str | None = None
    document_id: str | None = None


@dataclass(frozen=True)
class Duplicate:
    """The stored item an item duplicates: ``exact`` (same bytes) or ``near`` (cosine)."""

    id: str
    kind: str
    score: float


@dataclass(frozen=True)
class ItemResult:
    """What happened to one item: created, updated, unchanged or error."""

    index: int
    id: str | None
    status: str
    error: LatentspaceError | None = None
    duplicate_of: Duplicate | None = None


@dataclass
class _Prepared:
    index: int
    external_id: str
    kind: str
    sha256: str
    item: NewItem
    vector: np.ndarray | None = None
    image: Image | None = None


def blob_path(data_dir: Path, sha256: str) -> Path:
    """Where a stored original with this content hash lives."""
    return Path(data_dir) / "blobs" / sha256[:2] / sha256


def read_blob(data_dir: Path, sha256: str) -> bytes | None:
    """A stored original's bytes, or None."""
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        return None
    path = blob_path(data_dir, sha256)
    return path.read_bytes() if path.is_file() else None


def _write_blob(data_dir: Path, sha256: str, data: bytes) -> None:
    path = blob_path(data_dir, sha256)
    if not path.is_file():  # content-addressed: an existing file already holds these bytes
        atomic_write(path, data)


def _identify(i: int, item: NewItem, limits: Any) -> _Prepared:
    given = [s for s in SOURCES if getattr(item, s) is not None]
    if len(given) != 1:
        raise InvalidInput(f"an item needs exactly one of text, image or vector; got {given}")
    kind = given[0]
    if kind == "text":
        assert item.text is not None
        check_text(item.text, limits)
        digest = content_sha256(item.text)
    elif kind == "image":
        assert item.image is not None
        digest = content_sha256(item.image)
    else:
        digest = content_sha256(as_vector(item.vector, name="vector").tobytes())
    external_id = item.id if item.id is not None else digest
    if not external_id or len(external_id) > 256:
        raise InvalidInput(f"item id must be 1-256 characters, got {len(external_id)}")
    return _Prepared(i, external_id, kind, digest, item)


def ingest(
    space: LatentSpace, name: str, items: Sequence[NewItem], *, report_duplicates: bool = True
) -> list[ItemResult]:
    """Store ``items`` in collection ``name``; one result per item, in order.

    Raises:
        NotFound: no such collection.
        LimitExceeded: more items than ``max_batch``.
        InvalidInput: an id appears twice in the batch.
    """
    limits = space.settings.limits
    if len(items) > limits.max_batch:
        raise LimitExceeded(f"{len(items)} items, over the batch limit of {limits.max_batch}")
    collection = space.collection(name)
    results: dict[int, ItemResult] = {}
    prepared: list[_Prepared] = []
    for i, item in enumerate(items):
        try:
            prepared.append(_identify(i, item, limits))
        except InvalidInput as e:
            results[i] = ItemResult(i, item.id, "error", e)
    ids = [p.external_id for p in prepared]
    if len(set(ids)) != len(ids):
        dupe = next(x for x in ids if ids.count(x) > 1)
        raise InvalidInput(f"item id {dupe!r} appears twice in one batch")
    _reuse_stored(space, collection, prepared)
    _embed(space, collection, prepared, results)
    ready = [p for p in prepared if p.index not in results]
    if space.settings.store_images:
        for p in ready:
            if p.kind == "image":
                assert p.item.image is not None
                _write_blob(space.settings.data_dir, p.sha256, p.item.image)
    inputs = [
        ItemInput(
            external_id=p.external_id,
            kind=p.kind,
            sha256=p.sha256,
            vector=p.vector,  # type: ignore[arg-type]
            text=p.item.text,
            uri=p.item.uri,
            metadata=p.item.metadata,
            document_id=p.item.document_id,
        )
        for p in ready
    ]
    outcomes = space.upsert(name, inputs) if inputs else []
    duplicates: dict[int, Duplicate] = {}
    if report_duplicates:
        written = [
            (o.item_id, p.sha256, p.vector)
            for p, o in zip(ready, outcomes, strict=True)
            if o.vector_changed and p.vector is not None
        ]
        duplicates = _duplicates(space, collection, written)
    for p, outcome in zip(ready, outcomes, strict=True):
        duplicate = duplicates.get(outcome.item_id)
        results[p.index] = ItemResult(p.index, p.external_id, outcome.status, None, duplicate)
    return [results[i] for i in range(len(items))]


def _reuse_stored(space: LatentSpace, collection: CollectionRow, prepared: list[_Prepared]) -> None:
    # Same id and same content as a live stored item: its vector is already known.
    if not prepared:
        return
    with space.sessions() as session:
        rows = repo.items_by_sha256(
            session=session, collection=collection, digests=[p.sha256 for p in prepared]
        )
        by_id = {row.external_id: row for group in rows.values() for row in group}
        same = {
            p.index: by_id[p.external_id].id
            for p in prepared
            if p.external_id in by_id and by_id[p.external_id].sha256 == p.sha256
        }
        stored = repo.vectors_of(session=session, item_ids=list(same.values()), dim=collection.dim)
    for p in prepared:
        if p.index in same:
            p.vector = stored.get(same[p.index])


def _embed(
    space: LatentSpace,
    collection: CollectionRow,
    prepared: list[_Prepared],
    results: dict[int, ItemResult],
) -> None:
    limits = space.settings.limits
    todo = [p for p in prepared if p.vector is None]
    encoder = None
    if any(p.kind in ("text", "image") for p in todo):
        try:
            encoder = space.encoder_for(collection)
        except EncoderError as e:
            for p in todo:
                if p.kind != "vector":
                    results[p.index] = ItemResult(p.index, p.external_id, "error", e)
            todo = [p for p in todo if p.kind == "vector"]
    texts, images = [], []
    for p in todo:
        try:
            if p.kind == "vector":
                p.vector = as_vector(p.item.vector, dim=collection.dim, name="vector")
                if collection.metric == "cosine" and not np.linalg.norm(p.vector):
                    raise InvalidInput("a zero vector has no direction")
            elif p.kind == "text":
                require_encoder(encoder, collection, "text")
                texts.append(p)
            else:
                require_encoder(encoder, collection, "image")
                images.append(p)
        except LatentspaceError as e:
            results[p.index] = ItemResult(p.index, p.external_id, "error", e)
    images = _decode_all(images, limits, space.settings.encoder.decode_workers, results)
    batch = space.settings.encoder.batch_size
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        assert encoder is not None
        vectors = space.encoders.encode_text(encoder, [p.item.text or "" for p in chunk])
        for p, v in zip(chunk, vectors, strict=True):
            p.vector = v
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        assert encoder is not None
        vectors = space.encoders.encode_images(encoder, [p.image for p in chunk])  # type: ignore[misc]
        for p, v in zip(chunk, vectors, strict=True):
            p.vector, p.image = v, None


def _decode_all(
    todo: list[_Prepared], limits: Any, workers: int, results: dict[int, ItemResult]
) -> list[_Prepared]:
    # Pillow releases the GIL while decoding, so threads decode a batch in parallel.
    def decode(p: _Prepared) -> LatentspaceError | None:
        assert p.item.image is not None
        try:
            name = p.item.uri or f"item {p.external_id!r}"
            p.image = decode_checked(p.item.image, limits, name=name)
        except LatentspaceError as e:
            return e
        return None

    if workers > 1 and len(todo) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            errors = list(pool.map(decode, todo))
    else:
        errors = [decode(p) for p in todo]
    for p, error in zip(todo, errors, strict=True):
        if error is not None:
            results[p.index] = ItemResult(p.index, p.external_id, "error", error)
    return [p for p, error in zip(todo, errors, strict=True) if error is None]


def _duplicates(
    space: LatentSpace,
    collection: CollectionRow,
    written: list[tuple[int, str, np.ndarray]],
) -> dict[int, Duplicate]:
    # What each newly written vector duplicates, for a whole batch at once: one SQL lookup
    # of the content hashes, one index search of the rest, one SQL read of the candidates.
    if not written:
        return {}
    with space.sessions() as session:
        same_bytes = repo.items_by_sha256(
            session=session, collection=collection, digests=[sha for _, sha, _ in written]
        )
    found: dict[int, Duplicate] = {}
    for item_id, sha, _ in written:
        exact = [r for r in same_bytes.get(sha, []) if r.id != item_id]
        if exact:
            found[item_id] = Duplicate(exact[0].external_id, "exact", 1.0)
    rest = [(item_id, v) for item_id, _, v in written if item_id not in found]
    if not rest or collection.metric != "cosine":  # "near" is a cosine threshold
        return found
    threshold = space.settings.search.duplicate_threshold
    result = space.indexes.get(collection).search(np.stack([v for _, v in rest]), 2)
    near: dict[int, tuple[int, float]] = {}
    for row, (item_id, _) in enumerate(rest):
        for other, score in result.hits(row):
            if other != item_id:
                if score >= threshold:
                    near[item_id] = (other, score)
                break
    with space.sessions() as session:
        rows = repo.hit_rows(session=session, item_ids=[o for o, _ in near.values()])
    for item_id, (other, score) in near.items():
        if other in rows:
            found[item_id] = Duplicate(rows[other].external_id, "near", score)
    return found
