"""Duplicates: clusters over a collection, and a check before inserting."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from latentspace.api.deps import AuthorizedRoute, ReadDep, SpaceDep
from latentspace.api.routes.common import decode_base64
from latentspace.api.schemas import (
    ClusterPublic,
    DuplicateCheckRequest,
    DuplicateCheckResult,
    DuplicateOf,
    DuplicatesResult,
)
from latentspace.service import QueryTerm, dedup
from latentspace.service.embedding import content_sha256

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/collections/{name}/duplicates", tags=["duplicates"], route_class=AuthorizedRoute
)


@router.get("", dependencies=[ReadDep], summary="Clusters of exact and near duplicates")
def duplicates(
    name: str,
    space: SpaceDep,
    threshold: Annotated[float | None, Query(gt=0.0, le=1.0)] = None,
    neighbors: Annotated[int, Query(ge=1, le=100)] = 10,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> DuplicatesResult:
    """Items with the same sha256 (``exact``) or cosine ≥ ``threshold`` (``near``), grouped
    transitively, largest cluster first. Uses a k-NN search of every item on the index."""
    cut = threshold if threshold is not None else space.settings.search.duplicate_threshold
    clusters = dedup.find_clusters(space, name, threshold=cut, neighbors=neighbors, limit=limit)
    return DuplicatesResult(
        threshold=cut,
        clusters=[
            ClusterPublic(
                kind=c.kind,  # type: ignore[arg-type]
                items=[
                    DuplicateOf(
                        id=m.id,
                        kind="exact" if m.sha256 == c.items[0].sha256 else "near",
                        score=m.score,
                    )
                    for m in c.items
                ],
            )
            for c in clusters
        ],
    )


@router.post("/check", dependencies=[ReadDep], summary="Is this content already stored?")
def check(name: str, body: DuplicateCheckRequest, space: SpaceDep) -> DuplicateCheckResult:
    """Compare a candidate (not stored) with the collection: ``exact`` lists items with
    the same bytes (image) or text; ``near`` items with cosine ≥ ``threshold``."""
    cut = (
        body.threshold if body.threshold is not None else space.settings.search.duplicate_threshold
    )
    if body.image is not None:
        data = decode_base64(body.image)
        term, digest = QueryTerm(image=data), content_sha256(data)
    elif body.text is not None:
        term, digest = QueryTerm(text=body.text), content_sha256(body.text)
    else:
        term, digest = QueryTerm(vector=body.vector), None
    found = dedup.check(space, name, term, sha256=digest, threshold=cut, k=body.k)
    near = [DuplicateOf(id=i, kind="near", score=s) for i, s in found.near if i not in found.exact]
    return DuplicateCheckResult(
        duplicate=bool(found.exact or near),
        exact=found.exact,
        near=near,
        threshold=cut,
    )
