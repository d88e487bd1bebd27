"""Search stages that trade some relevance for variety: MMR and grouping.

    mmr      maximal marginal relevance over the head of the ranked list: each next hit
             maximises ``λ·relevance − (1 − λ)·max cosine to the hits already chosen``, with
             cosines between the stored vectors (read once from SQL for the head)
    group    hits grouped by a metadata field (the chunks of one document): the best groups
             first, each with its best ``size`` hits, as Qdrant's query groups

Both run after fusion and the reranker and before paging, so they see the final relevance.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentspace.errors import InvalidInput
from latentspace.index.fusion import Candidate
from latentspace.live import HitRow
from latentspace.service.context import Context
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow

__all__ = ["GROUP_WINDOW", "GroupBy", "Mmr", "field_values", "group", "mmr"]

GROUP_WINDOW = 4  # a grouped search looks among the best GROUP_WINDOW × groups × size hits


@dataclass(frozen=True)
class Mmr:
    """Re-rank the first ``candidates`` hits for variety; ``lambda_`` = 1 is plain relevance,
    0 is variety alone."""

    lambda_: float = 0.5
    candidates: int = 50

    def __post_init__(self) -> None:
        if not 0.0 <= self.lambda_ <= 1.0:
            raise InvalidInput(f"mmr.lambda must be in [0, 1], got {self.lambda_}")
        if self.candidates < 1:
            raise InvalidInput(f"mmr.candidates must be >= 1, got {self.candidates}")


@dataclass(frozen=True)
class GroupBy:
    """Up to ``groups`` groups of the hits that share ``field``'s value, ``size`` hits each."""

    field: str
    size: int = 3
    groups: int = 10

    @property
    def window(self) -> int:
        """How many hits of the ranked list the groups are gathered from."""
        return max(GROUP_WINDOW * self.groups * self.size, 100)


def mmr(
    ctx: Context,
    collection: CollectionRow,
    candidates: list[Candidate],
    settings: Mmr,
    want: int,
    *,
    cosines: bool,
) -> list[Candidate]:
    """The first ``want`` hits chosen by MMR from the first ``settings.candidates`` (the rest
    of the list is dropped: a page past the pool is empty). Relevance is each candidate's
    score in the list: as it is when the scores are cosines to the query (``cosines``),
    else (BM25, fused, reranked) rescaled to [0, 1] over the pool, so it weighs against
    the cosines between hits as a cosine would."""
    pool = candidates[: settings.candidates]
    if len(pool) <= 1 or settings.lambda_ == 1.0:
        return pool[:want]
    with ctx.sessions() as session:
        stored = repo.vectors_of(
            session=session, item_ids=[c.item_id for c in pool], dim=collection.dim
        )
    pool = [c for c in pool if c.item_id in stored]
    if not pool:
        return []
    x = np.stack([stored[c.item_id] for c in pool]).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    relevance = np.asarray([c.score for c in pool], dtype=np.float64)
    if not cosines:
        span = float(relevance.max() - relevance.min())
        relevance = (relevance - relevance.min()) / span if span > 0 else relevance * 0 + 1
    chosen = [0]  # the most relevant first
    closest = (x @ x[0]).astype(np.float64)  # each candidate's max cosine to the chosen
    open_ = np.ones(len(pool), dtype=bool)
    open_[0] = False
    while len(chosen) < min(want, len(pool)):
        value = settings.lambda_ * relevance - (1.0 - settings.lambda_) * closest
        value[~open_] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        open_[best] = False
        np.maximum(closest, x @ x[best], out=closest)
    return [pool[i] for i in chosen]


def field_values(row: HitRow, field: str) -> Iterator[Any]:
    """The values an item groups under for ``field``: ``document_id`` is the item's document
    (or its metadata key of that name); other fields are dot paths into the metadata. A list
    puts the item in each of its elements' groups; objects and null group nothing."""
    if field == "document_id" and row.document_id is not None:
        yield row.document_id
        return
    value: Any = row.metadata
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return
        value = value[part]
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, str | int | float | bool):
            yield v


def _key(value: Any) -> tuple[str, Any]:
    # JSON types apart: the group of 1 is not the group of true or of "1"
    return (type(value).__name__, value)


def group(
    ctx: Context, collection: CollectionRow, candidates: list[Candidate], settings: GroupBy
) -> list[tuple[Any, list[Candidate]]]:
    """The best ``settings.groups`` groups among the candidates (ordered by their best hit),
    each with its best ``settings.size`` hits; items without the field are left out."""
    rows = ctx.live.hits.rows(collection, [c.item_id for c in candidates])
    groups: dict[tuple[str, Any], tuple[Any, list[Candidate]]] = {}
    for c in candidates:
        row = rows.get(c.item_id)
        if row is None:
            continue
        for value in field_values(row, settings.field):
            key = _key(value)
            if key not in groups:
                if len(groups) == settings.groups:
                    continue
                groups[key] = (value, [])
            hits = groups[key][1]
            if len(hits) < settings.size:
                hits.append(c)
        if len(groups) == settings.groups and all(
            len(h) == settings.size for _, h in groups.values()
        ):
            break
    return list(groups.values())
