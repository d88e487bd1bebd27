"""Many items at once by ids or by a filter: read, delete, page through, count.

The paths are custom methods on the items (``…/items:get``), not ``…/items/get``: an item
may be called ``get``, and ``…/items/{id}`` must stay its own.
"""

from __future__ import annotations

from fastapi import APIRouter

from latentspace.api.convert import item_public
from latentspace.api.deps import AuthorizedRoute, ReadDep, ServiceDep, WriteDep
from latentspace.api.errors import NOT_FOUND
from latentspace.api.schemas import (
    ItemList,
    ItemsCount,
    ItemsCountResult,
    ItemsDelete,
    ItemsDeleteResult,
    ItemsGet,
    ItemsGetResult,
    ItemsScroll,
)
from latentspace.service import bulk, replica

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/collections/{name}",
    tags=["items"],
    route_class=AuthorizedRoute,
    responses=NOT_FOUND,
)


@router.post("/items:get", dependencies=[ReadDep], summary="Get items by id")
def get_items(name: str, body: ItemsGet, ctx: ServiceDep) -> ItemsGetResult:
    """The stored items among ``ids``, in the order asked; ids not stored are listed in
    ``missing`` (not an error)."""
    found = bulk.get(ctx, name, body.ids, with_vectors=body.include_vector)
    return ItemsGetResult(
        items=[item_public(r, found.vectors.get(r.id)) for r in found.rows],
        missing=found.missing,
    )


@router.post("/items:delete", dependencies=[WriteDep], summary="Delete items by ids or by a filter")
def delete_items(name: str, body: ItemsDelete, ctx: ServiceDep) -> ItemsDeleteResult:
    """Delete the items of ``ids``, or every item that passes ``filter``, in one
    transaction. Ids that are not stored are listed in ``missing`` (not an error)."""
    done = bulk.delete(ctx, name, ids=body.ids, filter=body.filter)
    seq = replica.written_seq(ctx, name)
    return ItemsDeleteResult(deleted=done.deleted, missing=done.missing, seq=seq)


@router.post("/items:scroll", dependencies=[ReadDep], summary="Page through items (with a filter)")
def scroll_items(name: str, body: ItemsScroll, ctx: ServiceDep) -> ItemList:
    """Up to ``limit`` items that pass ``filter``, in id order after ``after``; ``next`` is
    the ``after`` of the next page (null at the end)."""
    found, cursor = bulk.scroll(
        ctx,
        name,
        filter=body.filter,
        limit=body.limit,
        after=body.after,
        with_vectors=body.include_vector,
    )
    return ItemList(
        items=[item_public(r, found.vectors.get(r.id)) for r in found.rows], next=cursor
    )


@router.post("/items:count", dependencies=[ReadDep], summary="Count items (that pass a filter)")
def count_items(name: str, body: ItemsCount, ctx: ServiceDep) -> ItemsCountResult:
    """How many live items pass ``filter`` (all of them without one)."""
    return ItemsCountResult(count=bulk.count(ctx, name, body.filter))
