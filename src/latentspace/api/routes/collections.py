"""Collections: create, list, inspect, change codes, flush, rebuild, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from starlette.concurrency import run_in_threadpool

from latentspace.api.convert import collection_public
from latentspace.api.deps import (
    AdminDep,
    AuthorizedRoute,
    GrantDep,
    ReadDep,
    ServiceDep,
    require_reach,
)
from latentspace.api.errors import CONFLICT, NOT_FOUND
from latentspace.api.schemas import (
    CollectionCreate,
    CollectionList,
    CollectionPatch,
    CollectionPublic,
)
from latentspace.service import collections, tuning

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections", tags=["collections"], route_class=AuthorizedRoute)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[AdminDep],
    summary="Create a collection",
    responses=CONFLICT,
)
def create_collection(body: CollectionCreate, ctx: ServiceDep, grant: GrantDep) -> CollectionPublic:
    """Create a collection for a model's space (its dim and fingerprint come from the
    model) or, without a model, for raw vectors of ``dim``. 409 if the name is taken; 403
    for a name beyond the key's collections."""
    require_reach(grant, body.name)
    keyword = body.keyword.model_dump() if body.keyword is not None else None
    stats = collections.create(
        ctx,
        body.name,
        dim=body.dim,
        model=body.model,
        metric=body.metric,
        index=body.index,
        keyword=keyword,
        ttl_seconds=body.ttl_seconds,
        index_params={
            "quantization": body.quantization,
            "rescore": body.rescore,
            "recall_target": body.recall_target,
        },
    )
    return collection_public(stats)


@router.patch(
    "/{name}",
    dependencies=[AdminDep],
    summary="Change how the index codes its rows",
    responses=NOT_FOUND,
)
def patch_collection(name: str, body: CollectionPatch, ctx: ServiceDep) -> CollectionPublic:
    """Set ``quantization``, ``rescore`` or ``recall_target``. The index is rebuilt under
    the new settings in the background; searches keep using the current one until the swap
    (``index.quantization`` says which is live)."""
    tuning.retune(ctx, name, body.model_dump(exclude_unset=True))
    return collection_public(collections.stats(ctx, name))


@router.get("", dependencies=[ReadDep], summary="List collections")
def list_collections(ctx: ServiceDep, grant: GrantDep) -> CollectionList:
    """Every collection (the key reaches) with its statistics."""
    found = collections.list_stats(ctx, grant.covers)
    return CollectionList(collections=[collection_public(s) for s in found])


@router.get("/{name}", dependencies=[ReadDep], summary="Inspect a collection", responses=NOT_FOUND)
def get_collection(name: str, ctx: ServiceDep) -> CollectionPublic:
    """Count, dim, model and fingerprint, live index kind and its measured recall@10."""
    return collection_public(collections.stats(ctx, name))


@router.post(
    "/{name}/flush", dependencies=[AdminDep], summary="Save the index now", responses=NOT_FOUND
)
def flush_collection(name: str, ctx: ServiceDep) -> CollectionPublic:
    """Write the collection's index files and manifest now (they are also written on
    shutdown), measuring the live index's recall@10 against exact search."""
    return collection_public(collections.save(ctx, name))


@router.post(
    "/{name}/reindex", dependencies=[AdminDep], summary="Rebuild the index", responses=NOT_FOUND
)
def reindex_collection(name: str, ctx: ServiceDep) -> CollectionPublic:
    """Rebuild the collection's index from the vectors stored in SQL (no re-encoding), in
    the kind the collection asks for, and save it."""
    _, stats = collections.rebuild(ctx, name)
    return collection_public(stats)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[AdminDep],
    summary="Delete a collection",
    responses=NOT_FOUND,
)
async def delete_collection(name: str, ctx: ServiceDep) -> Response:
    """Delete the collection, its items, directions and index files."""
    await run_in_threadpool(collections.delete, ctx, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
