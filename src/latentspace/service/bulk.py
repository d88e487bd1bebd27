"""Items by the many: read, delete, page through and count by ids or by a filter.

What the RAG frameworks' stores call (LangChain's ``get_by_ids`` and ``delete``, Haystack's
``filter_documents`` and ``count_documents``, LlamaIndex's delete by ``ref_doc_id``), and
what Qdrant offers as points/get, points/delete, scroll and count. Ids that are not stored
are answered as missing, never as an error: deleting twice is deleting once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from latentspace import limits
from latentspace.errors import InvalidInput
from latentspace.live import Commit
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.service.matching import checked_filter, expired_ids, matching_ids
from latentspace.store import lookups, oplog
from latentspace.store import repository as repo
from latentspace.store.bulk import replace_metadata
from latentspace.store.expiry import visible
from latentspace.store.tables import CollectionRow, ItemRow

__all__ = ["Deleted", "Found", "count", "delete", "get", "rewrite_metadata", "scroll"]

_CHUNK = 5000  # ids a statement: well under every database's bound-variable cap


@dataclass(frozen=True)
class Found:
    """Stored items (in the order asked, each once), their vectors when asked (by item
    id), and the ids that are not stored."""

    rows: list[ItemRow]
    vectors: dict[int, np.ndarray]
    missing: list[str]


@dataclass(frozen=True)
class Deleted:
    """How many live items a delete removed, and the asked ids that were not live."""

    deleted: int
    missing: list[str]


def _checked_ids(ctx: Context, ids: Sequence[str]) -> list[str]:
    limits.check_batch(ctx.settings.limits, ids, "ids")
    return [limits.check_string(i, name="item id") for i in dict.fromkeys(ids)]


def _live_rows(session: Session, collection: CollectionRow, ids: list[str]) -> dict[str, ItemRow]:
    # The live items among ``ids``, by external id.
    by_id: dict[str, ItemRow] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = session.scalars(
            select(ItemRow).where(
                ItemRow.collection_id == collection.id,
                ItemRow.external_id.in_(ids[start : start + _CHUNK]),
                visible(session),
            )
        )
        by_id.update((row.external_id, row) for row in rows)
    return by_id


def _rows_of(session: Session, item_ids: np.ndarray) -> list[ItemRow]:
    # Live items by item id, in id order.
    rows: list[ItemRow] = []
    for start in range(0, len(item_ids), _CHUNK):
        chunk = [int(i) for i in item_ids[start : start + _CHUNK]]
        found = repo.items_by_ids(session=session, item_ids=chunk)
        rows += [found[i] for i in chunk if i in found]
    return rows


def get(ctx: Context, name: str, ids: Sequence[str], *, with_vectors: bool = False) -> Found:
    """The live items among ``ids`` (and their vectors when asked).

    Raises:
        NotFound: no such collection; LimitExceeded: more ids than ``max_batch``.
    """
    wanted = _checked_ids(ctx, ids)
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        by_id = _live_rows(session, collection, wanted)
        found = [by_id[i] for i in wanted if i in by_id]
        vectors = (
            repo.vectors_of(session=session, item_ids=[r.id for r in found], dim=collection.dim)
            if with_vectors and found
            else {}
        )
    return Found(found, vectors, [i for i in wanted if i not in by_id])


def delete(
    ctx: Context,
    name: str,
    *,
    ids: Sequence[str] | None = None,
    filter: dict[str, Any] | None = None,
) -> Deleted:
    """Soft-delete the items of ``ids``, or every live item that passes ``filter`` (judged in
    SQL inside the delete's transaction, so a write from another process cannot slip
    between the two). Exactly one of the two is given.

    Raises:
        InvalidInput: both or neither given, or a bad filter; NotFound: no such collection.
        LimitExceeded: more ids than ``max_batch``. QueryTimeout: the filter ran past the
            query deadline (nothing is deleted).
    """
    wanted, spec = _selection(ctx, ids, filter)
    collection = collections.get(ctx, name)
    with ctx.live.writing(collection):
        with ctx.sessions.begin() as session:
            oplog.serialize(session=session, collection=collection)
            live = [r.external_id for r in _chosen(ctx, session, collection, wanted, spec)]
            item_ids: list[int] = []
            for start in range(0, len(live), _CHUNK):
                item_ids += repo.delete_items(
                    session=session,
                    collection=collection,
                    external_ids=live[start : start + _CHUNK],
                )
            seq = oplog.last_seq(session=session, collection=collection)
        if item_ids:
            ctx.live.committed(collection, Commit(seq, deletes=item_ids))
    gone = set(live)
    return Deleted(len(item_ids), [i for i in wanted if i not in gone])


def rewrite_metadata(
    ctx: Context,
    name: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    ids: Sequence[str] | None = None,
    filter: dict[str, Any] | None = None,
) -> int:
    """Replace the metadata of the items of ``ids`` (or of every live item that passes
    ``filter``, judged in SQL inside the transaction) with ``change`` of it, all in one
    transaction: Qdrant's set, overwrite, delete and clear payload. Returns how many items
    changed; ids that are not stored are left out.

    Raises:
        InvalidInput: both or neither of ids and filter, a bad filter, or metadata that
            ``change`` made that no database could store (nothing is written).
        NotFound: no such collection. LimitExceeded: more ids than ``max_batch``.
    """
    wanted, spec = _selection(ctx, ids, filter)
    collection = collections.get(ctx, name)
    with ctx.live.writing(collection):
        with ctx.sessions.begin() as session:
            oplog.serialize(session=session, collection=collection)
            changes = []
            for row in _chosen(ctx, session, collection, wanted, spec):
                metadata = change(copy.deepcopy(row.metadata_))  # nested dicts too
                if metadata != row.metadata_:
                    limits.check_json(ctx.settings.limits, metadata, name="metadata")
                    changes.append((row, metadata))
            replace_metadata(session, collection, changes)
            seq = oplog.last_seq(session=session, collection=collection)
        if changes:
            ctx.live.committed(collection, Commit(seq, stale=[row.id for row, _ in changes]))
    return len(changes)


def _selection(
    ctx: Context, ids: Sequence[str] | None, filter: dict[str, Any] | None
) -> tuple[list[str], dict[str, Any] | None]:
    # The checked ids, or the checked filter: exactly one of the two is given.
    if (ids is None) == (filter is None):
        raise InvalidInput("give exactly one of ids or filter")
    wanted = _checked_ids(ctx, ids) if ids is not None else []
    return wanted, checked_filter(ctx, filter) if filter is not None else None


def _chosen(
    ctx: Context,
    session: Session,
    collection: CollectionRow,
    wanted: list[str],
    spec: dict[str, Any] | None,
) -> list[ItemRow]:
    # The live rows of ``wanted`` (in that order), or those that pass ``spec`` in SQL.
    if spec is None:
        by_id = _live_rows(session, collection, wanted)
        return [by_id[i] for i in wanted if i in by_id]
    deadline = ctx.settings.limits.max_query_seconds
    matched = lookups.filter_item_ids(
        session=session, collection=collection, spec=spec, deadline=deadline
    )
    return _rows_of(session, matched)


def scroll(
    ctx: Context,
    name: str,
    *,
    filter: dict[str, Any] | None = None,
    limit: int = 100,
    after: int = 0,
    with_vectors: bool = False,
) -> tuple[Found, int | None]:
    """Up to ``limit`` live items (that pass ``filter``) in id order after item id
    ``after``, and the cursor of the next page (None at the end). Filters are answered by
    the payload index, as a search's are.

    Raises:
        InvalidInput, LimitExceeded: a bad or too large filter; NotFound: no collection.
    """
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        if filter is None:
            rows = lookups.list_items(
                session=session, collection=collection, limit=limit + 1, after=after
            )
        else:
            matching = matching_ids(ctx, collection, filter)
            window = matching[np.searchsorted(matching, after, side="right") :][: limit + 1]
            rows = _rows_of(session, window)
        page = rows[:limit]
        vectors = (
            repo.vectors_of(session=session, item_ids=[r.id for r in page], dim=collection.dim)
            if with_vectors and page
            else {}
        )
    return Found(page, vectors, []), page[-1].id if len(rows) > limit else None


def count(ctx: Context, name: str, filter: dict[str, Any] | None = None) -> int:
    """Live items in the collection (that pass ``filter``).

    Raises:
        InvalidInput, LimitExceeded: a bad or too large filter; NotFound: no collection.
    """
    collection = collections.get(ctx, name)
    if filter is None:
        return ctx.live.indexes.stats(collection).count - int(expired_ids(ctx, collection).size)
    return int(matching_ids(ctx, collection, filter).shape[0])
