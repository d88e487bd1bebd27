"""Stored directions: ``mean(positive) − mean(negative)``, usable afterwards as query terms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentspace.errors import InvalidInput
from latentspace.index.algebra import direction
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.service.terms import QueryTerm, resolve_terms
from latentspace.store import directions as directions_repo
from latentspace.store.tables import DirectionRow

__all__ = ["DirectionInfo", "create", "delete", "list_all"]


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
