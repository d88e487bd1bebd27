"""Resolving duplicates: keep some items, move the others to the trash, restore from it.

Trashing is a soft delete with a timestamp, in one transaction with its oplog rows: the
trashed items leave the indexes and every search at once, and keep their rows, vectors
and originals, so :func:`restore` within ``search.trash_days`` brings them back exactly
(their vectors from SQL, never re-encoded). Past the retention period a trashed item is
an ordinary deleted one. Resolution can first merge the trashed items' metadata into the
kept ones: a key a kept item lacks takes the first trashed item's value that has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from latentspace import limits
from latentspace.errors import InvalidInput
from latentspace.live import Commit, HitRow
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.store import dedup, oplog
from latentspace.store import repository as repo
from latentspace.store.tables import ItemRow, as_utc, utcnow

__all__ = ["Resolution", "TrashPage", "TrashedItem", "resolve", "restore", "trash_page"]


@dataclass(frozen=True)
class Resolution:
    """What a resolution did, and until when the trashed items can be restored."""

    kept: list[str]
    trashed: list[str]
    restorable_until: str


@dataclass(frozen=True)
class TrashedItem:
    """An item in the trash."""

    id: str
    uri: str | None
    trashed_at: str
    restorable_until: str


@dataclass(frozen=True)
class TrashPage:
    """A page of the trash and the cursor of the next one."""

    items: list[TrashedItem]
    next: int | None


def _retention(ctx: Context) -> timedelta:
    return timedelta(days=ctx.settings.search.trash_days)


def _stamp(value: datetime) -> str:
    return as_utc(value).isoformat()


def _check_ids(ctx: Context, ids: Sequence[str], what: str) -> None:
    limits.check_batch(ctx.settings.limits, ids, what)
    for external_id in ids:
        limits.check_string(external_id, name="item id")
    if len(set(ids)) != len(ids):
        raise InvalidInput(f"{what} names an item twice")


def resolve(
    ctx: Context,
    name: str,
    *,
    keep: Sequence[str],
    trash: Sequence[str],
    merge_metadata: bool = False,
) -> Resolution:
    """Keep ``keep``, move ``trash`` to the trash, and (``merge_metadata``) first give the
    kept items the trashed items' metadata keys they lack.

    Raises:
        NotFound: no such collection, or an id that is not a live item.
        InvalidInput: nothing to trash, an id named twice or in both lists, merging
            into nothing (LimitExceeded: merged metadata over the limit, too many ids).
    """
    _check_ids(ctx, keep, "keep")
    _check_ids(ctx, trash, "trash")
    if not trash:
        raise InvalidInput("trash names no item: say which duplicates to move to the trash")
    both = sorted(set(keep) & set(trash))
    if both:
        raise InvalidInput(f"item {both[0]!r} is both kept and trashed")
    if merge_metadata and not keep:
        raise InvalidInput("merge_metadata needs at least one item to keep")
    collection = collections.get(ctx, name)
    with ctx.live.writing(collection):
        with ctx.sessions.begin() as session:
            oplog.serialize(session=session, collection=collection)
            rows = dedup.live_rows(
                session=session, collection=collection, external_ids=[*keep, *trash]
            )
            gone = [rows[e] for e in trash]
            kept = [rows[e] for e in keep]
            if merge_metadata:
                merged = _merge(ctx, kept, gone)
                oplog.log_changed(session=session, collection=collection, item_ids=merged)
            when = dedup.trash(session=session, collection=collection, rows=gone)
            seq = oplog.last_seq(session=session, collection=collection)
            trashed_ids, kept_ids = [r.id for r in gone], [r.id for r in kept]
        ctx.live.committed(collection, Commit(seq, deletes=trashed_ids, stale=kept_ids))
    return Resolution(list(keep), list(trash), _stamp(when + _retention(ctx)))


def _merge(ctx: Context, kept: list[ItemRow], gone: list[ItemRow]) -> list[int]:
    # Fold the trashed items' metadata into the kept ones'; the ids whose metadata changed.
    changed = []
    for row in kept:
        merged: dict[str, Any] = {}
        for other in gone:
            for key, value in other.metadata_.items():
                merged.setdefault(key, value)
        merged.update(row.metadata_)
        limits.check_json(
            ctx.settings.limits, merged, name=f"merged metadata of {row.external_id!r}"
        )
        if merged != row.metadata_:
            row.metadata_, row.updated_at = merged, utcnow()
            changed.append(row.id)
    return changed


def trash_page(ctx: Context, name: str, *, limit: int = 100, after: int = 0) -> TrashPage:
    """The restorable items of the trash, in id order after cursor ``after``."""
    collection = collections.get(ctx, name)
    retention = _retention(ctx)
    with ctx.sessions() as session:
        rows = dedup.trashed(
            session=session,
            collection=collection,
            since=utcnow() - retention,
            limit=limit + 1,
            after=after,
        )
    page = rows[:limit]
    return TrashPage(
        [
            TrashedItem(
                r.external_id,
                r.uri,
                _stamp(r.trashed_at or utcnow()),
                _stamp((r.trashed_at or utcnow()) + retention),
            )
            for r in page
        ],
        page[-1].id if len(rows) > limit else None,
    )


def restore(ctx: Context, name: str, external_ids: Sequence[str]) -> list[str]:
    """Bring items back from the trash, with their stored vectors; the ids restored.

    Raises:
        NotFound: an id that is not in the trash (or is past the retention period).
        InvalidInput: no ids, or one named twice.
    """
    _check_ids(ctx, external_ids, "ids")
    if not external_ids:
        raise InvalidInput("ids names no item to restore")
    collection = collections.get(ctx, name)
    with ctx.live.writing(collection):
        with ctx.sessions.begin() as session:
            oplog.serialize(session=session, collection=collection)
            rows = dedup.restore(
                session=session,
                collection=collection,
                external_ids=external_ids,
                since=utcnow() - _retention(ctx),
            )
            vectors = repo.vectors_of(
                session=session, item_ids=[r.id for r in rows], dim=collection.dim
            )
            seq = oplog.last_seq(session=session, collection=collection)
            hits = [
                HitRow.of(r.id, r.external_id, r.metadata_, r.text, r.uri, r.document_id, r.sha256)
                for r in rows
            ]
            hashes = [(r.id, r.phash) for r in rows]
        ctx.live.committed(collection, Commit(seq, upserts=vectors, rows=hits, phashes=hashes))
    return list(external_ids)
