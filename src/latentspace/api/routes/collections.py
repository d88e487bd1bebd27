"""Collections: create, list, inspect, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from starlette.concurrency import run_in_threadpool

from latentspace.api.deps import AdminDep, AuthorizedRoute, ReadDep, SpaceDep
from latentspace.api.schemas import CollectionCreate, CollectionList, CollectionPublic, IndexInfo
from latentspace.service import CollectionStats, LatentSpace

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections", tags=["collections"], route_class=AuthorizedRoute)


def _public(stats: CollectionStats) -> CollectionPublic:
    return CollectionPublic(
        name=stats.name,
        model=stats.model,
        dim=stats.dim,
        metric=stats.metric,
        fingerprint=stats.fingerprint,
        count=stats.count,
        index=IndexInfo(
            requested=stats.index_requested,
            kind=stats.index_kind,
            params=stats.index_params,
            recall_at_10=stats.recall_at_10,
        ),
        created_at=stats.created_at,
    )


def public_stats(space: LatentSpace, name: str) -> CollectionPublic:
    """The collection as ``GET /v1/collections/{name}`` shows it."""
    return _public(space.stats(name))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[AdminDep],
    summary="Create a collection",
)
def create_collection(body: CollectionCreate, space: SpaceDep) -> CollectionPublic:
    """Create a collection for a model's space (its dim and fingerprint come from the
    model) or, without a model, for raw vectors of ``dim``. 409 if the name is taken."""
    space.create_collection(
        body.name, dim=body.dim, model=body.model, metric=body.metric, index=body.index
    )
    return public_stats(space, body.name)


@router.get("", dependencies=[ReadDep], summary="List collections")
def list_collections(space: SpaceDep) -> CollectionList:
    """Every collection with its statistics."""
    return CollectionList(
        collections=[public_stats(space, row.name) for row in space.list_collections()]
    )


@router.get("/{name}", dependencies=[ReadDep], summary="Inspect a collection")
def get_collection(name: str, space: SpaceDep) -> CollectionPublic:
    """Count, dim, model and fingerprint, live index kind and its measured recall@10."""
    return public_stats(space, name)


@router.post("/{name}/flush", dependencies=[AdminDep], summary="Save the index now")
def flush_collection(name: str, space: SpaceDep) -> CollectionPublic:
    """Write the collection's index files and manifest now (they are also written on
    shutdown), measuring the live index's recall@10 against exact search."""
    space.save(name)
    return public_stats(space, name)


@router.post("/{name}/reindex", dependencies=[AdminDep], summary="Rebuild the index")
def reindex_collection(name: str, space: SpaceDep) -> CollectionPublic:
    """Rebuild the collection's index from the vectors stored in SQL (no re-encoding), in
    the kind the collection asks for, and save it."""
    space.reindex(name)
    return public_stats(space, name)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[AdminDep],
    summary="Delete a collection",
)
async def delete_collection(name: str, space: SpaceDep) -> Response:
    """Delete the collection, its items, directions and index files."""
    await run_in_threadpool(space.delete_collection, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
