"""Stored values that no longer read as what they should be, found and set aside in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, case, cast, func, or_, select, update
from sqlalchemy.orm import Session

from latentspace.store.bulk import insert_oplog
from latentspace.store.tables import CollectionRow, ItemRow, StoredInt, utcnow

__all__ = [
    "MistypedNumber",
    "UnreadableMetadata",
    "clear_unreadable_metadata",
    "mistyped_numbers",
    "store_numbers",
    "suspect",
]

# the integer columns an image item carries, each read leniently (tables.StoredInt)
_NUMBERS = ("phash", "pixels", "size_bytes")


@dataclass(frozen=True)
class UnreadableMetadata:
    """An item whose stored metadata text was not JSON, and that text."""

    item_id: int
    external_id: str
    raw: str


def _not_an_object() -> Any:
    # not JSON, or JSON but not an object (SQLite may evaluate both sides of an AND, and
    # json_type fails on malformed text: hence the CASE)
    text = cast(ItemRow.metadata_, Text)
    return case((func.json_valid(text) == 1, func.json_type(text) != "object"), else_=True)


def suspect(session: Session, collection: CollectionRow) -> bool:
    """Whether any of the collection's items holds what :func:`clear_unreadable_metadata`
    or :func:`mistyped_numbers` would find (a read, no lock; SQLite only)."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    mistyped = [func.typeof(getattr(ItemRow, n)).not_in(["integer", "null"]) for n in _NUMBERS]
    query = select(ItemRow.id).where(
        ItemRow.collection_id == collection.id, or_(_not_an_object(), *mistyped)
    )
    return session.execute(query.limit(1)).first() is not None


def clear_unreadable_metadata(
    session: Session, collection: CollectionRow
) -> list[UnreadableMetadata]:
    """Find the collection's items whose metadata text is not a JSON object (SQLite only:
    PostgreSQL's jsonb cannot hold text that does not parse) and give them empty metadata,
    with a ``meta`` oplog row each, so every filter evaluated in SQL works again (SQLite's
    JSON functions fail the whole statement on one malformed value). Returns what was
    cleared."""
    if session.get_bind().dialect.name != "sqlite":
        return []
    text = cast(ItemRow.metadata_, Text)
    found = [
        UnreadableMetadata(int(i), str(e), str(raw))
        for i, e, raw in session.execute(
            select(ItemRow.id, ItemRow.external_id, text).where(
                ItemRow.collection_id == collection.id, _not_an_object()
            )
        )
    ]
    if found:
        now = utcnow()
        session.execute(
            update(ItemRow)
            .where(ItemRow.id.in_([f.item_id for f in found]))
            .values(metadata_={}, updated_at=now)
        )
        insert_oplog(session, collection, [("meta", f.item_id) for f in found], now)
    return found


@dataclass(frozen=True)
class MistypedNumber:
    """An item whose integer column holds something else: what it holds, the integer that
    spells (or None), and the item's content hash (to derive the value anew)."""

    item_id: int
    external_id: str
    sha256: str
    column: str
    raw: object
    fixed: int | None


def mistyped_numbers(session: Session, collection: CollectionRow) -> list[MistypedNumber]:
    """The collection's items whose ``phash``, ``pixels`` or ``size_bytes`` is not an
    integer (SQLite only: its columns take any value), each with the integer it spells
    (``'123'``) or None."""
    if session.get_bind().dialect.name != "sqlite":
        return []
    found: list[MistypedNumber] = []
    for name in _NUMBERS:
        column = getattr(ItemRow, name)
        rows = session.execute(
            select(
                ItemRow.id,
                ItemRow.external_id,
                ItemRow.sha256,
                cast(column, Text),
                func.typeof(column),
            ).where(
                ItemRow.collection_id == collection.id,
                func.typeof(column).not_in(["integer", "null"]),
            )
        )
        for item_id, external_id, sha256, value, kind in rows:
            raw: object = float(value) if kind == "real" else value
            fixed = StoredInt().process_result_value(raw, None)
            found.append(
                MistypedNumber(int(item_id), str(external_id), str(sha256), name, raw, fixed)
            )
    return found


def store_numbers(
    session: Session, collection: CollectionRow, values: list[tuple[int, str, int | None]]
) -> None:
    """Store ``(item id, column, value)`` for each, with a ``meta`` oplog row each."""
    if not values:
        return
    now = utcnow()
    for item_id, column, value in values:
        session.execute(
            update(ItemRow).where(ItemRow.id == item_id).values({column: value, "updated_at": now})
        )
    insert_oplog(session, collection, [("meta", i) for i in sorted({v[0] for v in values})], now)
