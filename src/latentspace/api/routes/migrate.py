"""Model migration: move a collection to another model (a background job); its adapters."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from latentspace.api.convert import job_public
from latentspace.api.deps import AdminDep, AuthorizedRoute, ReadDep, ServiceDep
from latentspace.api.errors import CONFLICT, NOT_FOUND
from latentspace.api.schemas import AdapterList, AdapterPublic, JobPublic, MigrateRequest
from latentspace.service import adapters, migrate

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections", tags=["migrate"], route_class=AuthorizedRoute)


@router.post(
    "/{name}/migrate",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[AdminDep],
    summary="Move the collection to another model (a background job)",
    responses={**NOT_FOUND, **CONFLICT},
)
def start_migration(
    name: str, body: MigrateRequest, ctx: ServiceDep, response: Response
) -> JobPublic:
    """Queue a job that re-encodes the items with ``model`` (or a sample of them, carrying
    the rest through a fitted adapter) and then swaps the collection to the new model in
    one step. Searches use the old model until the swap; writes made meanwhile reach the
    new space too. Answers 202 with the job; poll ``GET /v1/jobs/{id}`` (the
    ``Location``): its ``params.result`` holds the adapter's held-out recall@10."""
    info = migrate.start(
        ctx,
        name,
        body.model,
        mode=body.mode,
        adapter=body.adapter,
        sample=body.sample,
        rank=body.rank,
        seed=body.seed,
    )
    response.headers["Location"] = f"/v1/jobs/{info.id}"
    return job_public(info)


@router.get(
    "/{name}/adapters",
    dependencies=[ReadDep],
    summary="List the collection's adapters between model spaces",
    responses=NOT_FOUND,
)
def list_adapters(name: str, ctx: ServiceDep) -> AdapterList:
    """Adapters fitted by migrations; a query term with ``model`` set to an adapter's source
    (spec or fingerprint) is carried through the ``current`` one."""
    return AdapterList(adapters=[AdapterPublic(**vars(a)) for a in adapters.list_all(ctx, name)])
