"""Stored directions: ``mean(positive) − mean(negative)``, usable afterwards as query terms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from latentspace.errors import InvalidInput, NotFound
from latentspace.index.adapter import Adapter
from latentspace.index.algebra import direction
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.service.terms import QueryTerm, resolve_terms
from latentspace.store import directions as directions_repo
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow, DirectionRow

__all__ = ["DirectionInfo", "create", "delete", "in_new_space", "list_all"]


@dataclass(frozen=True)
class DirectionInfo:
    """A stored direction: its name, length and how it was defined."""

    name: str
    norm: float
    definition: dict[str, Any]
    created_at: str


def _info(row: DirectionRow) -> DirectionInfo:
    norm = float(np.linalg.norm(np.frombuffer(row.vector, dtype=np.float32)))
    return DirectionInfo(row.name, norm, dict(row.definition), row.created_at.isoformat())


def create(
    ctx: Context,
    name: str,
    direction_name: str,
    positive: Sequence[QueryTerm],
    negative: Sequence[QueryTerm],
) -> DirectionInfo:
    """Store ``mean(positive) − mean(negative)`` under ``direction_name`` (replacing it).

    Raises:
        InvalidInput: a side is empty, or the two means are equal.
    """
    if not positive or not negative:
        raise InvalidInput("a direction needs at least one positive and one negative term")
    collection = collections.get(ctx, name)
    pos, _ = resolve_terms(ctx, collection, positive)
    neg, _ = resolve_terms(ctx, collection, negative)
    vector = direction([t.weight * t.vector for t in pos], [t.weight * t.vector for t in neg])
    definition = {
        "positive": [t.label for t in pos],
        "negative": [t.label for t in neg],
        # kept so that a model migration can compute the direction again in the new space
        "weights": {"positive": [t.weight for t in pos], "negative": [t.weight for t in neg]},
    }
    with ctx.sessions.begin() as session:
        row = directions_repo.put_direction(
            session=session,
            collection=collection,
            name=direction_name,
            vector=vector,
            definition=definition,
        )
        return _info(row)


def list_all(ctx: Context, name: str) -> list[DirectionInfo]:
    """The collection's stored directions."""
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        return [
            _info(r)
            for r in directions_repo.list_directions(session=session, collection=collection)
        ]


def delete(ctx: Context, name: str, direction_name: str) -> None:
    """Remove a stored direction (raises NotFound)."""
    collection = collections.get(ctx, name)
    with ctx.sessions.begin() as session:
        directions_repo.delete_direction(
            session=session, collection=collection, name=direction_name
        )


def in_new_space(
    session: Session,
    collection: CollectionRow,
    embed_text: Callable[[str], np.ndarray],
    vectors: dict[int, np.ndarray],
    adapter: Adapter | None,
) -> tuple[dict[int, np.ndarray], list[str]]:
    """Every direction of the collection in a new model's space (a migration's), by row id:
    computed again from its definition when its terms are texts (``embed_text``) and items
    (their new ``vectors``), else carried through ``adapter``; and the names of those that
    can be neither."""
    out: dict[int, np.ndarray] = {}
    dropped: list[str] = []
    for row in directions_repo.list_directions(session=session, collection=collection):
        again = _recomputed(session, collection, dict(row.definition), embed_text, vectors)
        if again is not None:
            out[row.id] = again
        elif adapter is not None:
            old = np.frombuffer(row.vector, dtype=np.float32, count=collection.dim)
            out[row.id] = adapter.apply_direction(old)
        else:
            dropped.append(row.name)
    return out, dropped


def _recomputed(
    session: Session,
    collection: CollectionRow,
    definition: dict[str, Any],
    embed_text: Callable[[str], np.ndarray],
    vectors: dict[int, np.ndarray],
) -> np.ndarray | None:
    # mean(positive) − mean(negative) of the definition's terms in the new space; None when
    # a term is neither a text nor an item with a new vector (an image or a raw vector).
    weights = definition.get("weights") or {}
    sides: list[list[np.ndarray]] = []
    for side in ("positive", "negative"):
        labels = [str(label) for label in definition.get(side, [])]
        side_weights = [float(w) for w in weights.get(side, [1.0] * len(labels))]
        if not labels or len(side_weights) != len(labels):
            return None
        terms = []
        for label, weight in zip(labels, side_weights, strict=True):
            kind, _, value = label.partition(":")
            if kind == "text":
                vector = embed_text(value)
            elif kind == "item":
                try:
                    item = repo.get_item(session=session, collection=collection, external_id=value)
                except NotFound:
                    return None
                if item.id not in vectors:
                    return None
                vector = vectors[item.id]
            else:
                return None
            terms.append(weight * vector)
        sides.append(terms)
    try:
        return direction(sides[0], sides[1])
    except InvalidInput:
        return None
