"""Items: ingest, the committed write (SQL, then the index), delete, read, list, patch.

A write is one SQL transaction (items + vectors + oplog), committed, then applied to the
collection's live index while :meth:`LiveIndexes.writing` is held, so the index applies
writes in oplog order and never holds a vector SQL does not.
"""

from __future__ import annotations

import io
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import numpy as np
from PIL import Image

from latentspace import limits
from latentspace.errors import InvalidInput, NotFound
from latentspace.live import Commit, HitRow
from latentspace.service import collections, tiers
from latentspace.service.context import Context
from latentspace.service.intake import (
    Duplicate,
    ItemResult,
    NewItem,
    Prepared,
    checked_original,
    embed,
    identify,
    originals_whole,
    reuse_stored,
    write_blob,
)
from latentspace.service.tiers import Candidate, DuplicatePolicy, Verdict
from latentspace.store import lookups, oplog
from latentspace.store import repository as repo
from latentspace.store.repository import ItemInput, UpsertOutcome
from latentspace.store.tables import CollectionRow, ItemRow
from latentspace.vectors import checked_rows

__all__ = [
    "Duplicate",
    "ItemResult",
    "NewItem",
    "StoredImage",
    "delete",
    "delete_one",
    "file_id",
    "get",
    "ingest",
    "ingest_vectors",
    "list_page",
    "lookup_hashes",
    "stored_image",
    "update_metadata",
    "vectors",
    "write",
]


def file_id(filename: str | None) -> str | None:
    """The id an uploaded file gets when none is given: its name, folders written ``:``
    (None when the name is no usable id: the item then takes its content's sha256)."""
    return limits.id_from_path(filename) if filename else None


@dataclass(frozen=True)
class StoredImage:
    """A stored original and its media type."""

    data: bytes
    media_type: str


def ingest(
    ctx: Context,
    name: str,
    items: Sequence[NewItem],
    *,
    report_duplicates: bool = True,
    on_duplicate: DuplicatePolicy | None = None,
) -> list[ItemResult]:
    """Store ``items`` in collection ``name``; one result per item, in order.

    Each item with new content is checked against the stored items and the earlier items
    of the batch before anything is written (see ``service.tiers``); ``on_duplicate``
    says what to do with a duplicate per tier (default: store it and say what it
    duplicates). ``report_duplicates=False`` without a policy skips the check.

    Raises:
        NotFound: no such collection.
        LimitExceeded: more items than ``max_batch``.
        InvalidInput: an id appears twice in the batch.
        DuplicateRejected: an item duplicates another in a tier the policy rejects
            (nothing is written).
    """
    limit = ctx.settings.limits
    limits.check_batch(limit, items, "items")
    collection = collections.get(ctx, name)
    results: dict[int, ItemResult] = {}
    prepared: list[Prepared] = []
    now = ctx.now()
    for i, item in enumerate(items):
        try:
            if item.expires_at is not None and item.expires_at <= now:
                raise InvalidInput(f"expires_at {item.expires_at.isoformat()} is not in the future")
            prepared.append(identify(i, item, limit))
        except InvalidInput as e:
            results[i] = ItemResult(i, item.id, "error", e)
    ids = [p.external_id for p in prepared]
    if len(set(ids)) != len(ids):
        dupe = next(x for x in ids if ids.count(x) > 1)
        raise InvalidInput(f"item id {dupe!r} appears twice in one batch")
    reuse_stored(ctx, collection, prepared)
    embed(ctx, collection, prepared, results)
    ready = [p for p in prepared if p.index not in results and p.vector is not None]
    verdicts = (
        _judge(ctx, collection, ready, on_duplicate or DuplicatePolicy())
        if report_duplicates or on_duplicate is not None
        else {}
    )
    for p in ready:
        verdict = verdicts.get(p.index)
        if verdict is not None and verdict.action == "skip":
            results[p.index] = ItemResult(
                p.index, p.external_id, "skipped", None, verdict.duplicate
            )
    ready = [p for p in ready if p.index not in results]
    if ctx.settings.store_images:
        for p in ready:
            if p.item.image is not None:
                write_blob(ctx.settings.data_dir, p.sha256, p.item.image)
    inputs = [
        ItemInput(
            external_id=p.external_id,
            kind=p.kind,
            sha256=p.sha256,
            vector=p.vector,
            text=p.item.text,
            uri=p.item.uri,
            metadata=p.item.metadata,
            document_id=p.item.document_id,
            phash=p.phash,
            pixels=p.pixels,
            size_bytes=len(p.item.image) if p.item.image is not None else None,
            expires_at=p.item.expires_at.astimezone(UTC) if p.item.expires_at else None,
        )
        for p in ready
        if p.vector is not None
    ]
    outcomes = write(ctx, name, inputs) if inputs else []
    if ctx.settings.store_images:  # each image written, or found whole (write_blob)
        originals_whole(ctx, collection, [o.item_id for o in outcomes])
    for p, outcome in zip(ready, outcomes, strict=True):
        verdict = verdicts.get(p.index) if outcome.vector_changed else None
        duplicate = verdict.duplicate if verdict is not None else None
        results[p.index] = ItemResult(p.index, p.external_id, outcome.status, None, duplicate)
    return [results[i] for i in range(len(items))]


def _judge(
    ctx: Context, collection: CollectionRow, ready: list[Prepared], policy: DuplicatePolicy
) -> dict[int, Verdict]:
    # Verdicts on the items with new content (the others are stored as they are); the
    # stored versions of the ids they rewrite do not count as originals.
    fresh = [p for p in ready if p.fresh and p.vector is not None]
    candidates = [
        Candidate(p.external_id, p.sha256, p.phash, p.vector) for p in fresh if p.vector is not None
    ]
    verdicts = tiers.judge_batch(
        ctx,
        collection,
        candidates,
        policy,
        tiers.cuts_of(ctx),
        exclude={p.external_id for p in fresh},
        names=[f"item {p.index} ({p.item.uri or repr(p.external_id)})" for p in fresh],
    )
    return {p.index: v for p, v in zip(fresh, verdicts, strict=True)}


def ingest_vectors(
    ctx: Context,
    name: str,
    vectors: np.ndarray,
    *,
    ids: Sequence[str] | None = None,
    metadata: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    uris: Sequence[str | None] | None = None,
    on_duplicate: DuplicatePolicy | None = None,
) -> list[ItemResult]:
    """Store the rows of ``vectors`` as items (see :func:`ingest`), with per-row columns.

    The bulk path: rows are checked for duplicates only when ``on_duplicate`` is given (a
    policy of ``store`` reports them), since the check searches the index once per row: a
    third of a bulk load's time in ``bench/bench_peers.py``.

    Raises:
        LimitExceeded: more rows than ``max_batch``.
        InvalidInput: a column whose length is not the number of rows.
        DuplicateRejected: a row duplicates another in a tier the policy rejects.
    """
    rows = len(vectors)
    limits.check_batch(ctx.settings.limits, vectors, "vectors")
    if isinstance(metadata, dict) or metadata is None:
        metadata = [dict(metadata or {}) for _ in range(rows)]
    for label, column in (("ids", ids), ("metadata", metadata), ("uris", uris)):
        if column is not None and len(column) != rows:
            raise InvalidInput(f"{label} has {len(column)} entries for {rows} vectors")
    return ingest(
        ctx,
        name,
        [
            NewItem(
                id=None if ids is None else ids[i],
                vector=vectors[i],
                metadata=metadata[i],
                uri=None if uris is None else uris[i],
            )
            for i in range(rows)
        ],
        report_duplicates=False,
        on_duplicate=on_duplicate,
    )


def write(
    ctx: Context, name: str, items: Sequence[ItemInput], *, index: bool = True
) -> list[UpsertOutcome]:
    """Store items with their vectors (one transaction), then index the changed vectors
    (unless not ``index``: a batch job that rebuilds the index from SQL once at the end).

    Raises:
        InvalidInput: a vector that is not finite, or zero in a cosine collection.
        DimensionMismatch: a vector of another dimension.
    """
    collection = collections.get(ctx, name)
    matrix = checked_rows(
        [item.vector for item in items],
        collection.dim,
        direction=collection.metric == "cosine",
        name=lambda i: f"item {items[i].external_id!r}",
    )
    vectors = {item.external_id: matrix[n] for n, item in enumerate(items)}
    with ctx.live.writing(collection):
        ctx.live.indexes.check_room(collection, len(items))  # 507 before anything is written
        with ctx.sessions.begin() as session:
            oplog.serialize(session=session, collection=collection)
            outcomes = repo.upsert_items(session=session, collection=collection, items=items)
            seq = oplog.last_seq(session=session, collection=collection)
        if not index:
            return outcomes
        upserts = {o.item_id: vectors[o.external_id] for o in outcomes if o.vector_changed}
        by_id = {item.external_id: item for item in items}
        hashes = [(o.item_id, by_id[o.external_id].phash) for o in outcomes if o.vector_changed]
        commit = Commit(seq, upserts=upserts, rows=_hit_rows(items, outcomes), phashes=hashes)
        ctx.live.committed(collection, commit)
    return outcomes


def _hit_rows(items: Sequence[ItemInput], outcomes: Sequence[UpsertOutcome]) -> list[HitRow]:
    # What the hit cache holds from now on of the items a write created or changed.
    by_id = {item.external_id: item for item in items}
    rows = []
    for o in outcomes:
        if o.status != "unchanged":
            i = by_id[o.external_id]
            rows.append(
                HitRow.of(
                    o.item_id, o.external_id, i.metadata, i.text, i.uri, i.document_id, i.sha256
                )
            )
    return rows


def delete(ctx: Context, name: str, external_ids: Sequence[str]) -> int:
    """Soft-delete items by external id; returns how many were live."""
    for external_id in external_ids:
        limits.check_string(external_id, name="item id")
    collection = collections.get(ctx, name)
    with ctx.live.writing(collection):
        with ctx.sessions.begin() as session:
            oplog.serialize(session=session, collection=collection)
            item_ids = repo.delete_items(
                session=session, collection=collection, external_ids=external_ids
            )
            seq = oplog.last_seq(session=session, collection=collection)
        ctx.live.committed(collection, Commit(seq, deletes=item_ids))
    originals_whole(ctx, collection, item_ids)  # gone: no damage of theirs left to repair
    return len(item_ids)


def delete_one(ctx: Context, name: str, external_id: str) -> None:
    """Soft-delete one item.

    Raises:
        NotFound: no such collection, or no live item with that id.
    """
    if not delete(ctx, name, [external_id]):
        raise NotFound(f"item {external_id!r} not found in collection {name!r}")


def get(
    ctx: Context, name: str, external_id: str, *, with_vector: bool = False
) -> tuple[ItemRow, np.ndarray | None]:
    """A live item and (when asked) its vector.

    Raises:
        NotFound: no such collection or item.
    """
    limits.check_string(external_id, name="item id")
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        row = repo.get_item(session=session, collection=collection, external_id=external_id)
        if not with_vector:
            return row, None
        stored = repo.vectors_of(session=session, item_ids=[row.id], dim=collection.dim)
        return row, stored[row.id]


def vectors(ctx: Context, name: str, item_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """Stored vectors of items (by item id)."""
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        return repo.vectors_of(session=session, item_ids=item_ids, dim=collection.dim)


def list_page(
    ctx: Context, name: str, *, limit: int, after: int = 0
) -> tuple[list[ItemRow], int | None]:
    """Up to ``limit`` live items in id order after item id ``after``, and the next cursor."""
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        rows = lookups.list_items(
            session=session, collection=collection, limit=limit + 1, after=after
        )
    page = rows[:limit]
    return page, page[-1].id if len(rows) > limit else None


def update_metadata(ctx: Context, name: str, external_id: str, metadata: dict[str, Any]) -> ItemRow:
    """Merge metadata into an item (a key set to None is removed); no re-embedding.

    Raises:
        InvalidInput: metadata no database could store (LimitExceeded when too large).
    """
    limits.check_json(ctx.settings.limits, metadata, name="metadata")
    collection = collections.get(ctx, name)
    with ctx.live.writing(collection):
        with ctx.sessions.begin() as session:
            oplog.serialize(session=session, collection=collection)
            row = repo.update_metadata(
                session=session, collection=collection, external_id=external_id, metadata=metadata
            )
            seq = oplog.last_seq(session=session, collection=collection)
        ctx.live.committed(collection, Commit(seq, stale=[row.id]))  # no vector changed
    return row


def lookup_hashes(ctx: Context, name: str, digests: Sequence[str]) -> dict[str, list[str]]:
    """External ids of live items by content hash, for the hashes that are stored."""
    limits.check_batch(ctx.settings.limits, digests, "hashes")
    for i, digest in enumerate(digests):
        limits.check_string(digest, name=f"sha256[{i}]")
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        rows = lookups.ids_by_sha256(session=session, collection=collection, digests=digests)
    return {digest: [external for _, external in group] for digest, group in rows.items()}


def stored_image(ctx: Context, name: str, external_id: str) -> StoredImage:
    """The stored original of an image item, with its media type.

    Raises:
        NotFound: no such item, or it has no stored image; DamagedOriginal when the stored
            file no longer matches the item's sha256 (never served; recorded for /readyz).
    """
    row, _ = get(ctx, name, external_id)
    data = None
    if row.kind == "image":
        collection = collections.get(ctx, name)
        data = checked_original(ctx, collection, row.id, row.sha256, external_id)
    if data is None:
        raise NotFound(f"item {external_id!r} has no stored image")
    return StoredImage(data, _media_type(data, row.uri))


def _media_type(data: bytes, uri: str | None) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "", "application/octet-stream")
    except OSError:  # includes UnidentifiedImageError
        guess, _ = mimetypes.guess_type(uri or "")
        return guess or "application/octet-stream"
