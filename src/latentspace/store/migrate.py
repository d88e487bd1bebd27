"""Model migration in SQL: a migration's vectors while it runs, the swap, fitted adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from latentspace.errors import NotFound
from latentspace.store.bulk import ID_CHUNK, driver_insert, insert_oplog, replace_vectors, table_of
from latentspace.store.repository import intact_vector
from latentspace.store.tables import (
    AdapterRow,
    CollectionRow,
    DirectionRow,
    ItemRow,
    ItemVectorRow,
    JobRow,
    MigrationVectorRow,
    utcnow,
)

__all__ = [
    "MODEL_OP",
    "ItemSource",
    "adapter_between",
    "adapters_of",
    "drop_pending",
    "insert_adapters",
    "item_sources",
    "pending_hashes",
    "pending_vectors",
    "put_adapter",
    "put_pending",
    "stored_vectors",
    "swap_model",
]

# The oplog op a swap writes (item id 0): every process must drop the collection's index
# and cached row, whose vectors are in the old space.
MODEL_OP = "model"


@dataclass(frozen=True)
class ItemSource:
    """What re-encoding an item needs: its kind, content hash and text (images are read
    from the blob store by hash)."""

    id: int
    kind: str
    sha256: str
    text: str | None


def item_sources(
    *,
    session: Session,
    collection: CollectionRow,
    after: int = 0,
    limit: int | None = None,
    ids: Sequence[int] | None = None,
) -> list[ItemSource]:
    """Items of the collection that have a vector (live, deleted or in the trash), in id
    order after ``after`` (at most ``limit``; only ``ids`` when given, asked for in chunks
    that stay under SQLite's bound on parameters)."""
    query = (
        select(ItemRow.id, ItemRow.kind, ItemRow.sha256, ItemRow.text)
        .join(ItemVectorRow, ItemVectorRow.item_id == ItemRow.id)
        .where(ItemRow.collection_id == collection.id, ItemRow.id > after)
        .order_by(ItemRow.id)
    )
    if ids is None:
        rows = session.execute(query if limit is None else query.limit(limit))
        return [ItemSource(int(i), str(k), str(s), t) for i, k, s, t in rows]
    wanted = sorted(i for i in set(ids) if i > after)
    out: list[ItemSource] = []
    for start in range(0, len(wanted), ID_CHUNK):
        if limit is not None and len(out) >= limit:
            break
        rows = session.execute(query.where(ItemRow.id.in_(wanted[start : start + ID_CHUNK])))
        out += [ItemSource(int(i), str(k), str(s), t) for i, k, s, t in rows]
    return out if limit is None else out[:limit]


def stored_vectors(*, session: Session, item_ids: Sequence[int], dim: int) -> dict[int, np.ndarray]:
    """The stored (old-space) vectors of items, live or not, by id; a vector that fails its
    length or checksum (``repository.intact_vector``) is left out."""
    out: dict[int, np.ndarray] = {}
    columns = (ItemVectorRow.item_id, ItemVectorRow.vector, ItemVectorRow.checksum)
    for start in range(0, len(item_ids), ID_CHUNK):
        chunk = list(item_ids[start : start + ID_CHUNK])
        rows = session.execute(select(*columns).where(ItemVectorRow.item_id.in_(chunk)))
        for item_id, blob, checksum in rows:
            if intact_vector(blob, checksum, dim):
                out[int(item_id)] = np.frombuffer(blob, dtype=np.float32, count=dim)
    return out


def put_pending(
    *, session: Session, job_id: int, vectors: Sequence[tuple[int, str, np.ndarray]]
) -> None:
    """Store (or replace) the migration's vectors ``(item id, sha256 encoded, vector)``."""
    if not vectors:
        return
    ids = [item_id for item_id, _, _ in vectors]
    for start in range(0, len(ids), ID_CHUNK):
        session.execute(
            delete(MigrationVectorRow).where(
                MigrationVectorRow.job_id == job_id,
                MigrationVectorRow.item_id.in_(ids[start : start + ID_CHUNK]),
            )
        )
    driver_insert(
        session,
        table_of(MigrationVectorRow),
        [
            {
                "job_id": job_id,
                "item_id": i,
                "sha256": sha,
                "vector": np.asarray(v, dtype=np.float32).tobytes(),
            }
            for i, sha, v in vectors
        ],
    )


def drop_pending(*, session: Session, job_ids: Sequence[int]) -> None:
    """Delete the vectors of migrations that ended without a swap (cancelled, failed)."""
    if job_ids:
        session.execute(
            delete(MigrationVectorRow).where(MigrationVectorRow.job_id.in_(list(job_ids)))
        )


def pending_hashes(*, session: Session, job_id: int) -> dict[int, str]:
    """Item id → the sha256 its migration vector was encoded from (no vectors read)."""
    rows = session.execute(
        select(MigrationVectorRow.item_id, MigrationVectorRow.sha256).where(
            MigrationVectorRow.job_id == job_id
        )
    )
    return {int(i): str(s) for i, s in rows}


def pending_vectors(
    *, session: Session, job_id: int, dim: int
) -> dict[int, tuple[str, np.ndarray]]:
    """The migration's vectors so far: item id → (sha256 it was encoded from, vector)."""
    rows = session.execute(
        select(
            MigrationVectorRow.item_id, MigrationVectorRow.sha256, MigrationVectorRow.vector
        ).where(MigrationVectorRow.job_id == job_id)
    )
    return {
        int(i): (str(s), np.frombuffer(b, dtype=np.float32, count=dim))
        for i, s, b in rows
        if len(b) == 4 * dim
    }


def swap_model(
    *,
    session: Session,
    collection: CollectionRow,
    job_id: int,
    model: str,
    dim: int,
    fingerprint: str,
    vectors: dict[int, np.ndarray],
    directions: dict[int, np.ndarray],
    result: dict[str, object],
) -> None:
    """Move the collection to ``model``: every item's vector, every direction's, the model,
    dim and fingerprint, in the caller's transaction (which holds the collection's write
    lock); the migration's own vectors are deleted, its result recorded on the job, and a
    :data:`MODEL_OP` oplog row tells every process to reload."""
    replace_vectors(
        session, [(i, np.asarray(v, dtype=np.float32).tobytes()) for i, v in vectors.items()]
    )
    for direction_id, vector in directions.items():
        session.execute(
            update(DirectionRow)
            .where(DirectionRow.id == direction_id)
            .values(vector=np.asarray(vector, dtype=np.float32).tobytes())
        )
    session.execute(
        update(CollectionRow)
        .where(CollectionRow.id == collection.id)
        .values(model=model, dim=dim, fingerprint=fingerprint)
    )
    session.execute(delete(MigrationVectorRow).where(MigrationVectorRow.job_id == job_id))
    job = session.get(JobRow, job_id)
    if job is not None:
        job.params = {**job.params, "result": result}
    insert_oplog(session, collection, [(MODEL_OP, 0)], utcnow())


def put_adapter(
    *,
    session: Session,
    collection: CollectionRow,
    source_model: str | None,
    source_fingerprint: str,
    target_fingerprint: str,
    kind: str,
    matrix: np.ndarray,
    bias: np.ndarray,
    recall_at_10: float | None,
    fitted_on: int,
) -> AdapterRow:
    """Store (or replace) the collection's adapter from one space into another."""
    row = session.scalar(
        select(AdapterRow).where(
            AdapterRow.collection_id == collection.id,
            AdapterRow.source_fingerprint == source_fingerprint,
            AdapterRow.target_fingerprint == target_fingerprint,
        )
    )
    if row is None:
        row = AdapterRow(
            collection_id=collection.id,
            source_fingerprint=source_fingerprint,
            target_fingerprint=target_fingerprint,
        )
        session.add(row)
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    row.source_model, row.kind = source_model, kind
    row.dim_in, row.dim_out = int(m.shape[0]), int(m.shape[1])
    row.matrix = m.tobytes()
    row.bias = np.asarray(bias, dtype=np.float32).tobytes()
    row.recall_at_10, row.fitted_on, row.created_at = recall_at_10, fitted_on, utcnow()
    session.flush()
    return row


def insert_adapters(
    *, session: Session, collection: CollectionRow, adapters: Sequence[dict[str, object]]
) -> None:
    """Add adapters given as dicts of their fields (a restored snapshot's)."""
    for fields in adapters:
        session.add(AdapterRow(collection_id=collection.id, **fields))
    session.flush()


def adapter_between(*, session: Session, collection: CollectionRow, source: str) -> AdapterRow:
    """The collection's adapter into its current space from ``source`` (a fingerprint, or
    the model spec it was made from).

    Raises:
        NotFound: no such adapter.
    """
    row = session.scalar(
        select(AdapterRow)
        .where(
            AdapterRow.collection_id == collection.id,
            AdapterRow.target_fingerprint == collection.fingerprint,
            (AdapterRow.source_fingerprint == source) | (AdapterRow.source_model == source),
        )
        .order_by(AdapterRow.created_at.desc())
        .limit(1)
    )
    if row is None:
        raise NotFound(f"collection {collection.name!r} has no adapter from {source!r}")
    return row


def adapters_of(*, session: Session, collection: CollectionRow) -> list[AdapterRow]:
    """Every adapter stored with the collection, newest first."""
    return list(
        session.scalars(
            select(AdapterRow)
            .where(AdapterRow.collection_id == collection.id)
            .order_by(AdapterRow.created_at.desc())
        )
    )
