"""The core repository functions, ``session`` keyword-only: collections (create, get, list,
delete), items (upsert, get, patch, delete, by id), their stored vectors,
live counts and the filter DSL's id lists. The other ``store`` modules hold the rest of the
SQL by concern (``reads``, ``lookups``, ``oplog``, ``dedup``, ``jobs``, ``directions``,
``migrate``, ``snapshots``).

Writes only add to the session; the caller commits, so one batch is one transaction: item
rows, vector rows and oplog rows become visible together or not at all, before any index is
touched.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from latentspace.errors import Conflict, CorruptVector, InvalidInput, NotFound
from latentspace.store import expiry
from latentspace.store.bulk import (
    ItemInput,
    insert_items,
    insert_oplog,
    insert_vectors,
    replace_vectors,
    vector_bytes,
)
from latentspace.store.expiry import visible
from latentspace.store.tables import (
    CollectionRow,
    DirectionRow,
    IndexManifestRow,
    ItemRow,
    ItemVectorRow,
    OplogRow,
    as_utc,
    utcnow,
)
from latentspace.types import IndexChoice, Metric, WriteStatus

__all__ = [
    "NAME_PATTERN",
    "ItemInput",
    "UpsertOutcome",
    "count_live",
    "create_collection",
    "delete_collection",
    "delete_items",
    "fingerprint_of",
    "get_collection",
    "get_item",
    "intact_vector",
    "items_by_ids",
    "iter_live_vectors",
    "last_item_id",
    "list_collections",
    "live_item_pages",
    "live_vectors",
    "update_metadata",
    "upsert_items",
    "vector_bytes",
    "vectors_of",
]

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


@dataclass(frozen=True)
class UpsertOutcome:
    """What an upsert did to one item: ``created``, ``updated`` or ``unchanged``."""

    external_id: str
    item_id: int
    status: WriteStatus
    vector_changed: bool


# -- collections ---------------------------------------------------------------------------
def create_collection(
    *,
    session: Session,
    name: str,
    model: str | None,
    dim: int,
    fingerprint: str,
    metric: Metric = "cosine",
    index_kind: IndexChoice = "auto",
    index_params: dict[str, Any] | None = None,
    keyword: dict[str, Any] | None = None,
) -> CollectionRow:
    """Add a collection row (flushed, not committed).

    Raises:
        InvalidInput: a bad name or dim.
        Conflict: the name is taken.
    """
    if not NAME_PATTERN.match(name):
        raise InvalidInput(
            f"invalid collection name {name!r}: 1-128 letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    if not 1 <= dim <= 65_536:
        raise InvalidInput(f"dim must be between 1 and 65536, got {dim}")
    if session.scalar(select(CollectionRow.id).where(CollectionRow.name == name)) is not None:
        raise Conflict(f"collection {name!r} already exists")
    row = CollectionRow(
        name=name,
        model=model,
        dim=dim,
        fingerprint=fingerprint,
        metric=metric,
        index_kind=index_kind,
        index_params=index_params or {},
        keyword=keyword,
        created_at=utcnow(),
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as e:
        raise Conflict(f"collection {name!r} already exists") from e
    return row


def get_collection(*, session: Session, name: str) -> CollectionRow:
    """The collection called ``name``.

    Raises:
        NotFound: no such collection.
    """
    row = session.scalar(select(CollectionRow).where(CollectionRow.name == name))
    if row is None:
        raise NotFound(f"collection {name!r} does not exist")
    return row


def fingerprint_of(*, session: Session, collection_id: int) -> str | None:
    """The collection's model fingerprint as SQL has it now (None: no such collection)."""
    return session.scalar(
        select(CollectionRow.fingerprint).where(CollectionRow.id == collection_id)
    )


def list_collections(*, session: Session) -> list[CollectionRow]:
    """All collections, by name."""
    return list(session.scalars(select(CollectionRow).order_by(CollectionRow.name)))


def delete_collection(*, session: Session, name: str) -> CollectionRow:
    """Delete a collection and everything in it (cascades)."""
    row = get_collection(session=session, name=name)
    item_ids = select(ItemRow.id).where(ItemRow.collection_id == row.id)
    session.execute(delete(ItemVectorRow).where(ItemVectorRow.item_id.in_(item_ids)))
    for table in (ItemRow, OplogRow, IndexManifestRow, DirectionRow):
        session.execute(delete(table).where(table.collection_id == row.id))
    session.delete(row)
    session.flush()
    return row


# -- items ---------------------------------------------------------------------------------
def upsert_items(
    *, session: Session, collection: CollectionRow, items: Sequence[ItemInput]
) -> list[UpsertOutcome]:
    """Insert or update items by external id; one oplog row per changed item (``upsert``:
    its vector, ``text``: its text, ``meta``: only its other fields).

    Same content (sha256) and metadata → ``unchanged`` and nothing is written; same content
    with new metadata → ``updated`` without a new vector; new content → a new vector.
    """
    ids = [item.external_id for item in items]
    if len(set(ids)) != len(ids):
        raise InvalidInput("an item id appears twice in one batch")
    existing = {
        row.external_id: row
        for row in session.scalars(
            select(ItemRow).where(
                ItemRow.collection_id == collection.id, ItemRow.external_id.in_(ids)
            )
        )
    }
    outcomes: list[UpsertOutcome | None] = []
    now = expiry.now(session)
    ttl = collection.ttl_seconds
    default = now + timedelta(seconds=ttl) if ttl else None  # for items without their own
    fresh: list[tuple[int, ItemInput, bytes]] = []  # inserted in bulk below
    vectors: list[tuple[int, bytes]] = []  # (item id, blob) of updated rows
    logged: list[tuple[str, int]] = []
    for item in items:
        blob = vector_bytes(item.vector, collection.dim, item.external_id)
        row = existing.get(item.external_id)
        if row is None:
            fresh.append((len(outcomes), item, blob))
            outcomes.append(None)
            continue
        revived = row.deleted
        content_changed = revived or row.sha256 != item.sha256 or row.kind != item.kind
        text_changed = row.text != item.text  # the keyword index tails the oplog for it
        expires = item.expires_at or default
        fields_changed = (row.metadata_, row.text, row.uri, row.document_id) != (
            item.metadata,
            item.text,
            item.uri,
            item.document_id,
        ) or (row.expires_at and as_utc(row.expires_at)) != expires
        if not content_changed and not fields_changed:
            outcomes.append(UpsertOutcome(item.external_id, row.id, "unchanged", False))
            continue
        row.kind, row.sha256, row.uri, row.text = item.kind, item.sha256, item.uri, item.text
        row.metadata_, row.document_id, row.expires_at = item.metadata, item.document_id, expires
        row.deleted, row.trashed_at, row.updated_at = False, None, now
        if content_changed:
            row.phash, row.pixels, row.size_bytes = item.phash, item.pixels, item.size_bytes
            vectors.append((row.id, blob))
            logged.append(("upsert", row.id))
        else:
            logged.append(("text" if text_changed else "meta", row.id))
        status: WriteStatus = "created" if revived else "updated"
        outcomes.append(UpsertOutcome(item.external_id, row.id, status, content_changed))
    session.flush()  # the updated rows, before the bulk statements below
    if vectors:
        replace_vectors(session, vectors)
    if fresh:
        new_ids = insert_items(session, collection, [i for _, i, _ in fresh], now, default)
        vectors = [(item_id, blob) for item_id, (_, _, blob) in zip(new_ids, fresh, strict=True)]
        insert_vectors(session, vectors)
        for item_id, (position, item, _) in zip(new_ids, fresh, strict=True):
            outcomes[position] = UpsertOutcome(item.external_id, item_id, "created", True)
            logged.append(("upsert", item_id))
    insert_oplog(session, collection, logged, now)
    return [o for o in outcomes if o is not None]


def get_item(*, session: Session, collection: CollectionRow, external_id: str) -> ItemRow:
    """A live item by external id.

    Raises:
        NotFound: no live item with that id.
    """
    row = session.scalar(
        select(ItemRow).where(
            ItemRow.collection_id == collection.id,
            ItemRow.external_id == external_id,
            visible(session),
        )
    )
    if row is None:
        raise NotFound(f"item {external_id!r} not found in collection {collection.name!r}")
    return row


def update_metadata(
    *, session: Session, collection: CollectionRow, external_id: str, metadata: dict[str, Any]
) -> ItemRow:
    """Merge ``metadata`` into an item's (a key set to ``None`` is removed); one ``meta``
    oplog row, so other processes refresh what they hold of the item."""
    row = get_item(session=session, collection=collection, external_id=external_id)
    merged = {**row.metadata_, **metadata}
    row.metadata_ = {k: v for k, v in merged.items() if v is not None}
    row.updated_at = utcnow()
    session.flush()
    insert_oplog(session, collection, [("meta", row.id)], row.updated_at)
    return row


def delete_items(
    *, session: Session, collection: CollectionRow, external_ids: Sequence[str]
) -> list[int]:
    """Soft-delete live items; returns their item ids (absent ids are ignored)."""
    rows = list(
        session.scalars(
            select(ItemRow).where(
                ItemRow.collection_id == collection.id,
                ItemRow.external_id.in_(list(external_ids)),
                ItemRow.deleted.is_(False),
            )
        )
    )
    now = utcnow()
    for row in rows:
        row.deleted, row.updated_at = True, now
    session.flush()
    insert_oplog(session, collection, [("delete", row.id) for row in rows], now)
    return [row.id for row in rows]


def items_by_ids(*, session: Session, item_ids: Sequence[int]) -> dict[int, ItemRow]:
    """Live items by primary key, in one query."""
    if not item_ids:
        return {}
    rows = session.scalars(select(ItemRow).where(ItemRow.id.in_(list(item_ids)), visible(session)))
    return {row.id: row for row in rows}


def intact_vector(blob: bytes, checksum: int | None, dim: int) -> bool:
    """Whether stored bytes are the vector that was written: its length and its CRC-32."""
    return len(blob) == 4 * dim and (checksum is None or zlib.crc32(blob) == checksum)


def live_item_pages(
    *,
    session: Session,
    collection: CollectionRow,
    columns: Sequence[Any],
    page: int,
    upto: int | None = None,
) -> Iterator[list[Any]]:
    """Pages of ``columns`` of every live item joined with its vector row, in id order;
    each row ends with the item id (the page boundary). ``upto``: the last item id read
    (items written after a reader began are not chased page after page)."""
    after = -1
    last = [] if upto is None else [ItemRow.id <= upto]
    while True:
        rows = session.execute(
            select(*columns, ItemRow.id)
            .join(ItemVectorRow, ItemVectorRow.item_id == ItemRow.id)
            .where(
                ItemRow.collection_id == collection.id,
                ItemRow.deleted.is_(False),
                ItemRow.id > after,
                *last,
            )
            .order_by(ItemRow.id)
            .limit(page)
        ).all()
        if not rows:
            return
        after = int(rows[-1][-1])
        yield list(rows)


def vectors_of(*, session: Session, item_ids: Sequence[int], dim: int) -> dict[int, np.ndarray]:
    """Stored vectors by item id.

    Raises:
        CorruptVector: a stored vector fails its checksum (it is never served).
    """
    if not item_ids:
        return {}
    rows = session.execute(
        select(ItemVectorRow.item_id, ItemVectorRow.vector, ItemVectorRow.checksum).where(
            ItemVectorRow.item_id.in_(list(item_ids))
        )
    )
    out = {}
    for item_id, blob, checksum in rows:
        if not intact_vector(blob, checksum, dim):
            raise CorruptVector(
                f"the stored vector of item {item_id} fails its checksum; re-ingest or delete "
                "the item"
            )
        out[item_id] = np.frombuffer(blob, dtype=np.float32, count=dim)
    return out


def iter_live_vectors(
    *, session: Session, collection: CollectionRow, batch: int = 10_000, upto: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every live item's (id, vector), in id order, ``batch`` at a time (``upto``: the
    last item id read).

    A vector that fails its checksum is left out (and logged, naming the item): a rebuild
    serves the rest rather than a corrupted vector or nothing.
    """
    columns = (ItemRow.id, ItemVectorRow.vector, ItemVectorRow.checksum)
    for rows in live_item_pages(
        session=session, collection=collection, columns=columns, page=batch, upto=upto
    ):
        good: list[tuple[int, bytes]] = []
        bad: list[int] = []
        for item_id, blob, checksum, _ in rows:
            if intact_vector(blob, checksum, collection.dim):
                good.append((item_id, blob))
            else:
                bad.append(item_id)
        for item_id in bad:
            logger.error(
                "collection %s: the stored vector of item %d fails its checksum; left out",
                collection.name,
                item_id,
            )
        if good:
            ids = np.fromiter((r[0] for r in good), dtype=np.int64, count=len(good))
            vectors = np.frombuffer(b"".join(r[1] for r in good), dtype=np.float32)
            yield ids, vectors.reshape(len(good), collection.dim)


def live_vectors(*, session: Session, collection: CollectionRow) -> tuple[np.ndarray, np.ndarray]:
    """All live items' ids and vectors as two arrays (empty arrays for an empty collection)."""
    batches = list(iter_live_vectors(session=session, collection=collection))
    if not batches:
        return np.empty(0, np.int64), np.zeros((0, collection.dim), np.float32)
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def last_item_id(*, session: Session, collection: CollectionRow) -> int:
    """The highest item id the collection has used (0 when none)."""
    found = session.scalar(
        select(func.max(ItemRow.id)).where(ItemRow.collection_id == collection.id)
    )
    return int(found or 0)


def count_live(*, session: Session, collection: CollectionRow) -> int:
    """Live (not deleted) items in the collection."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(ItemRow)
            .where(ItemRow.collection_id == collection.id, visible(session))
        )
        or 0
    )
