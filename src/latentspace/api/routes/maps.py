"""The map of a collection: fit it (a background job), read it."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from latentspace.api.convert import job_public, json_response
from latentspace.api.deps import AdminDep, AuthorizedRoute, ReadDep, ServiceDep
from latentspace.api.errors import NOT_FOUND
from latentspace.api.schemas import JobPublic, MapCluster, MapPublic, MapRequest
from latentspace.service import maps

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections", tags=["map"], route_class=AuthorizedRoute)


@router.post(
    "/{name}/map",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[AdminDep],
    summary="Fit the collection's map (a background job)",
    responses=NOT_FOUND,
)
def fit_map(name: str, body: MapRequest, ctx: ServiceDep, response: Response) -> JobPublic:
    """Queue a job that projects every live vector to 2-D (UMAP or PCA), clusters the
    points (HDBSCAN) and names the clusters. Answers 202 with the job; poll
    ``GET /v1/jobs/{id}`` (the ``Location``), then read ``GET …/map``."""
    info = maps.start(
        ctx,
        name,
        method=body.method,
        vocabulary=body.vocabulary,
        min_cluster_size=body.min_cluster_size,
    )
    response.headers["Location"] = f"/v1/jobs/{info.id}"
    return job_public(info)


@router.get(
    "/{name}/map",
    dependencies=[ReadDep],
    summary="Read the collection's map",
    response_model=MapPublic,
    responses=NOT_FOUND,
)
def get_map(name: str, ctx: ServiceDep) -> Response:
    """Every live item's point and cluster as of now: items written since the fit are
    placed by the fitted projection (no refit) and join their nearest neighbour's
    cluster; deleted ones are gone. 404 until a map has been fitted, or while its saved
    file does not load (damaged, another collection's, an old format: fit it again)."""
    view = maps.view(ctx, name)
    return json_response(
        MapPublic(
            seq=view.seq,
            fitted_seq=view.fitted_seq,
            method=view.method,
            placed=view.placed,
            ids=view.ids,
            x=view.xy[:, 0].round(5).tolist(),
            y=view.xy[:, 1].round(5).tolist(),
            cluster=view.cluster.tolist(),
            clusters=[MapCluster(**vars(c)) for c in view.clusters],
        )
    )
