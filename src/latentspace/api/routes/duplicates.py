"""Duplicates: clusters over a collection, and a check before inserting."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from latentspace.api.convert import decode_base64
from latentspace.api.deps import AuthorizedRoute, ReadDep, ServiceDep
from latentspace.api.errors import NOT_FOUND
from latentspace.api.schemas import (
    ClusterPublic,
    DuplicateCheckRequest,
    DuplicateCheckResult,
    DuplicateOf,
    DuplicatesResult,
)
from latentspace.service import QueryTerm, duplicates

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/collections/{name}/duplicates",
    tags=["duplicates"],
    route_class=AuthorizedRoute,
    responses=NOT_FOUND,
)


@router.get("", dependencies=[ReadDep], summary="Clusters of exact and near duplicates")
def find_duplicates(
    name: str,
    ctx: ServiceDep,
    threshold: Annotated[float | None, Query(gt=0.0, le=1.0)] = None,
    neighbors: Annotated[int, Query(ge=1, le=100)] = 10,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> DuplicatesResult:
    """Items with the same sha256 (``exact``) or cosine ≥ ``threshold`` (``near``), grouped
    transitively, largest cluster first. Uses a k-NN search of every item on the index."""
    found = duplicates.find_clusters(
        ctx, name, threshold=threshold, neighbors=neighbors, limit=limit
    )
    return DuplicatesResult(
        threshold=found.threshold,
        clusters=[
            ClusterPublic(
                kind=c.kind,
                items=[DuplicateOf(id=m.id, kind=m.kind, score=m.score) for m in c.items],
            )
            for c in found.clusters
        ],
    )


@router.post("/check", dependencies=[ReadDep], summary="Is this content already stored?")
def check(name: str, body: DuplicateCheckRequest, ctx: ServiceDep) -> DuplicateCheckResult:
    """Compare a candidate (not stored) with the collection: ``exact`` lists items with
    the same bytes (image) or text; ``near`` items with cosine ≥ ``threshold``."""
    term = QueryTerm(
        image=decode_base64(body.image) if body.image is not None else None,
        text=body.text,
        vector=body.vector,
    )
    found = duplicates.check(ctx, name, term, threshold=body.threshold, k=body.k)
    return DuplicateCheckResult(
        duplicate=bool(found.exact or found.near),
        exact=found.exact,
        near=[DuplicateOf(id=i, kind="near", score=s) for i, s in found.near],
        threshold=found.threshold,
    )
