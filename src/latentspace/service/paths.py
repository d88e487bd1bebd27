"""Walks through the space: slerp from one term to another, the nearest unused item at
each step (the "morph" walk)."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentspace import limits
from latentspace.errors import InvalidInput
from latentspace.index.algebra import slerp_path
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.service.queries import PathStep
from latentspace.service.search import search_vector
from latentspace.service.terms import QueryTerm, resolve_terms

__all__ = ["PathStep", "walk_path"]


def walk_path(
    ctx: Context,
    name: str,
    start: QueryTerm,
    end: QueryTerm,
    *,
    steps: int,
    filter: dict[str, Any] | None = None,
    with_vectors: bool = False,
) -> list[PathStep]:
    """Slerp from ``start`` to ``end`` in ``steps`` and take the nearest unused item at each.

    No item appears twice, so a walk between two stored items starts at the first and, when
    the walk has steps to spare, ends at the second.

    Raises:
        InvalidInput: fewer than 2 steps; LimitExceeded: more than ``max_path_steps``.
    """
    if steps < 2:
        raise InvalidInput(f"a path needs at least 2 steps, got {steps}")
    limits.check(ctx.settings.limits, "max_path_steps", steps, "steps", "path")
    collection = collections.get(ctx, name)
    (a, b), _ = resolve_terms(ctx, collection, [start, end])
    points = slerp_path(a.vector, b.vector, steps)
    seen: set[int] = set()
    out = []
    for t, point in zip(np.linspace(0.0, 1.0, steps).tolist(), points, strict=True):
        # k = used + 1 always leaves one unused item, unless the collection runs out.
        hits = search_vector(
            ctx, name, point, len(seen) + 1, filter=filter, with_vectors=with_vectors
        )
        hit = next((h for h in hits if h.item_id not in seen), None)
        if hit is not None:
            seen.add(hit.item_id)
        out.append(PathStep(float(t), hit))
    return out
