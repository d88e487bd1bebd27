"""Duplicates: clusters, a check before inserting, resolution, and the trash."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from latentspace.api.convert import decode_base64
from latentspace.api.deps import AuthorizedRoute, ReadDep, ServiceDep, WriteDep
from latentspace.api.errors import NOT_FOUND
from latentspace.api.schemas import (
    ClusterMemberPublic,
    ClusterPublic,
    DuplicateCheckRequest,
    DuplicateCheckResult,
    DuplicateOf,
    DuplicatesResult,
    ResolveRequest,
    ResolveResult,
    RestoreRequest,
    RestoreResult,
    TierName,
    TrashedPublic,
    TrashList,
)
from latentspace.service import QueryTerm, duplicates, resolve

__all__ = ["router", "trash_router"]

router = APIRouter(
    prefix="/v1/collections/{name}/duplicates",
    tags=["duplicates"],
    route_class=AuthorizedRoute,
    responses=NOT_FOUND,
)
trash_router = APIRouter(
    prefix="/v1/collections/{name}/trash",
    tags=["duplicates"],
    route_class=AuthorizedRoute,
    responses=NOT_FOUND,
)


@router.get("", dependencies=[ReadDep], summary="Clusters of duplicates, by tier")
def find_duplicates(
    name: str,
    ctx: ServiceDep,
    threshold: Annotated[
        float | None, Query(gt=0.0, le=1.0, description="Cosine of the `similar` tier.")
    ] = None,
    hamming: Annotated[
        int | None, Query(ge=0, le=20, description="Bits of the `same_image` tier.")
    ] = None,
    tier: Annotated[
        TierName, Query(description="The weakest tier that makes a duplicate.")
    ] = "similar",
    neighbors: Annotated[int, Query(ge=1, le=100)] = 10,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> DuplicatesResult:
    """Clusters that do not chain: the oldest unclustered item is a representative and its
    cluster the items that duplicate it, each with its tier and evidence against it."""
    found = duplicates.find_clusters(
        ctx, name, threshold=threshold, hamming=hamming, tier=tier, neighbors=neighbors, limit=limit
    )
    return DuplicatesResult(
        threshold=found.cuts.cosine,
        hamming=found.cuts.hamming,
        tier=found.tier,
        clusters=[
            ClusterPublic(
                representative=c.representative,
                keep=c.keep,
                tier=c.tier,
                members=[
                    ClusterMemberPublic(
                        id=m.id,
                        tier=m.tier,
                        cosine=m.cosine,
                        hamming=m.hamming,
                        uri=m.uri,
                        pixels=m.pixels,
                        size_bytes=m.size_bytes,
                        metadata_keys=m.metadata_keys,
                    )
                    for m in c.members
                ],
            )
            for c in found.clusters
        ],
    )


@router.post("/check", dependencies=[ReadDep], summary="Is this content already stored?")
def check_duplicate(
    name: str, body: DuplicateCheckRequest, ctx: ServiceDep
) -> DuplicateCheckResult:
    """Compare a candidate (not stored) with the collection: the stored items it would
    duplicate, strongest tier first, each with its evidence."""
    term = QueryTerm(
        image=decode_base64(body.image) if body.image is not None else None,
        text=body.text,
        vector=body.vector,
    )
    found = duplicates.check(
        ctx, name, term, threshold=body.threshold, hamming=body.hamming, k=body.k
    )
    return DuplicateCheckResult(
        duplicate=bool(found.findings),
        findings=[
            DuplicateOf(id=d.id, tier=d.tier, cosine=d.cosine, hamming=d.hamming)
            for d in found.findings
        ],
        threshold=found.cuts.cosine,
        hamming=found.cuts.hamming,
    )


@router.post("/resolve", dependencies=[WriteDep], summary="Keep some, trash the others")
def resolve_duplicates(name: str, body: ResolveRequest, ctx: ServiceDep) -> ResolveResult:
    """Move `trash` to the trash (restorable for `LATENTSPACE_SEARCH__TRASH_DAYS`), after
    merging their metadata into `keep` when asked."""
    done = resolve.resolve(
        ctx, name, keep=body.keep, trash=body.trash, merge_metadata=body.merge_metadata
    )
    return ResolveResult(
        kept=done.kept, trashed=done.trashed, restorable_until=done.restorable_until
    )


@trash_router.get("", dependencies=[ReadDep], summary="Items in the trash")
def list_trash(
    name: str,
    ctx: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int, Query(ge=0, le=2**62, description="`next` of the previous page.")] = 0,
) -> TrashList:
    """The items a resolution trashed that can still be restored."""
    page = resolve.trash_page(ctx, name, limit=limit, after=after)
    return TrashList(
        items=[
            TrashedPublic(
                id=t.id, uri=t.uri, trashed_at=t.trashed_at, restorable_until=t.restorable_until
            )
            for t in page.items
        ],
        next=page.next,
    )


@trash_router.post("/restore", dependencies=[WriteDep], summary="Restore items from the trash")
def restore_trash(name: str, body: RestoreRequest, ctx: ServiceDep) -> RestoreResult:
    """Bring trashed items back, with their stored vectors (nothing is re-encoded)."""
    return RestoreResult(restored=resolve.restore(ctx, name, body.ids))
