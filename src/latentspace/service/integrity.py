"""Damage in a collection's stored data, found, set aside and named (``/readyz``).

Each check contains the damage to what it touches and records it in the damage log
(:class:`~latentspace.live.damage.DamageLog`) with its repair; the rest of the collection,
and every other collection, serves as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from latentspace.embedder.images import perceptual_hash
from latentspace.errors import LatentspaceError
from latentspace.live.commit import Commit
from latentspace.live.damage import item_key
from latentspace.service.context import Context
from latentspace.service.encoders import decode_checked
from latentspace.service.intake import read_blob
from latentspace.store import integrity, oplog
from latentspace.store.tables import CollectionRow

__all__ = ["check", "check_metadata", "check_numbers"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SHOWN = 120  # characters of an unreadable value the damage entry quotes


def check(ctx: Context, collection: CollectionRow) -> int:
    """Every check of the collection's stored rows; how many values were set aside. Only
    SQLite can hold such values, and only a collection where a read finds some is
    written to (under its write lock)."""
    with ctx.sessions() as session:
        if not integrity.suspect(session, collection):
            return 0
    return check_metadata(ctx, collection) + check_numbers(ctx, collection)


def check_numbers(ctx: Context, collection: CollectionRow) -> int:
    """Store the integer each mistyped ``phash``, ``pixels`` or ``size_bytes`` spells, or
    derive it anew from the stored original, or else null; how many there were."""

    def fix(session: Session) -> list[tuple[integrity.MistypedNumber, int | None]]:
        found = integrity.mistyped_numbers(session, collection)
        values = [(f, _value(ctx, f)) for f in found]
        integrity.store_numbers(session, collection, [(f.item_id, f.column, v) for f, v in values])
        return values

    values = _rewritten(ctx, collection, fix, lambda fixed: fixed[0].item_id)
    for f, value in values:
        now = "cleared" if value is None else f"stored as {value}"
        if f.fixed is None and value is not None:
            now += ", derived anew from the stored original"
        repair = (
            "; its image is left out of the perceptual-hash tier until it is deleted and "
            "uploaded again"
            if f.column == "phash" and value is None
            else ""
        )
        ctx.live.damage.record(
            collection,
            f"{item_key(f.item_id)} {f.column}",
            f"item {f.external_id!r}: stored {f.column} {f.raw!r} was not an integer; {now}"
            + repair,
        )
    return len(values)


def _value(ctx: Context, found: integrity.MistypedNumber) -> int | None:
    # The integer the stored value spells, else the one its stored original gives.
    if found.fixed is not None:
        return found.fixed
    try:
        data = read_blob(ctx.settings.data_dir, found.sha256)  # checked against the sha256
        if data is None:
            return None
        if found.column == "size_bytes":
            return len(data)
        image = decode_checked(data, ctx.settings.limits)
    except LatentspaceError:  # not the original any more, or not an image: nothing to derive
        return None
    if found.column == "pixels":
        return image.width * image.height
    return perceptual_hash(image)


def _rewritten(
    ctx: Context,
    collection: CollectionRow,
    change: Callable[[Session], list[T]],
    item_of: Callable[[T], int],
) -> list[T]:
    # What ``change`` rewrote, in one transaction under the collection's write lock, each
    # item then re-read by the views (a ``meta`` oplog row each is ``change``'s to write).
    with ctx.live.writing(collection):
        with ctx.sessions.begin() as session:
            oplog.serialize(session=session, collection=collection)
            done = change(session)
            seq = oplog.last_seq(session=session, collection=collection)
        if done:
            stale = sorted({item_of(d) for d in done})
            ctx.live.committed(collection, Commit(seq, stale=stale))
    return done


def check_metadata(ctx: Context, collection: CollectionRow) -> int:
    """Give every item whose stored metadata is not JSON empty metadata (its text is
    logged whole and quoted in the damage entry); how many there were."""
    found = _rewritten(
        ctx,
        collection,
        lambda session: integrity.clear_unreadable_metadata(session, collection),
        lambda f: f.item_id,
    )
    for f in found:
        logger.error(
            "collection %s: item %r: stored metadata is not JSON, cleared; it was: %s",
            collection.name,
            f.external_id,
            f.raw,
        )
        shown = f.raw if len(f.raw) <= _SHOWN else f.raw[:_SHOWN] + "…"
        ctx.live.damage.record(
            collection,
            item_key(f.item_id),
            f"item {f.external_id!r}: its stored metadata was not JSON ({shown!r}) and now "
            "reads as empty; write it again (PATCH or PUT the item)",
        )
    return len(found)
