"""Search (one term or a weighted sum of terms), image upload search, directions, paths."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from latentspace.api.deps import AdminDep, AuthorizedRoute, ReadDep, SpaceDep
from latentspace.api.routes.common import form_json, hits_public, query_term
from latentspace.api.schemas import (
    CompositeQuery,
    DirectionCreate,
    DirectionList,
    DirectionPublic,
    ExplainTerm,
    PathRequest,
    PathResult,
    PathStepPublic,
    SearchRequest,
    SearchResult,
)
from latentspace.errors import InvalidInput
from latentspace.index import SearchParams
from latentspace.service import QueryTerm, query
from latentspace.service.query import DirectionInfo

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections/{name}", tags=["search"], route_class=AuthorizedRoute)


def _direction(info: DirectionInfo) -> DirectionPublic:
    return DirectionPublic(
        name=info.name, norm=info.norm, definition=info.definition, created_at=info.created_at
    )


@router.post("/search", dependencies=[ReadDep], summary="Search with one term or a sum of terms")
def search(name: str, body: SearchRequest, space: SpaceDep) -> SearchResult:
    """Nearest items to ``normalise(Σ weight·term)``. A term is ``{text}``, ``{image}``
    (base64), ``{item}`` (a stored item's vector), ``{vector}`` or ``{direction}``. Items
    named by ``item`` terms are left out of the results (``exclude_query_items``)."""
    started = time.perf_counter()
    terms = body.query.terms if isinstance(body.query, CompositeQuery) else [body.query]
    params = (
        SearchParams(nprobe=body.params.nprobe, ef_search=body.params.ef_search)
        if body.params is not None
        else None
    )
    answer = query.search(
        space,
        name,
        [query_term(t, name=f"term {i}") for i, t in enumerate(terms)],
        k=body.k,
        filter=body.filter,
        min_score=body.min_score,
        offset=body.offset,
        params=params,
        with_explain=body.explain,
        exclude_query_items=body.exclude_query_items,
    )
    return SearchResult(
        results=hits_public(space, name, answer.hits, body.include),
        explain=[
            ExplainTerm(term=c.label, weight=c.weight, cosine=c.cosine)
            for c in answer.contributions
        ]
        if answer.contributions is not None
        else None,
        took_ms=(time.perf_counter() - started) * 1000,
    )


@router.post(
    "/search/image",
    dependencies=[ReadDep],
    summary="Search with an uploaded image (multipart)",
)
def search_image(
    name: str,
    space: SpaceDep,
    file: Annotated[UploadFile, File(description="The query image.")],
    k: Annotated[int, Form(ge=1)] = 10,
    filter: Annotated[str | None, Form(description="A filter as JSON.")] = None,
    min_score: Annotated[float | None, Form(allow_inf_nan=False)] = None,
) -> SearchResult:
    """The ``k`` items nearest the image."""
    started = time.perf_counter()
    spec: dict[str, Any] | None = None
    if filter:
        spec = form_json(filter, field="filter")
        if not isinstance(spec, dict):
            raise InvalidInput("filter must be a JSON object")
    data = file.file.read(space.settings.limits.max_image_bytes + 1)
    answer = query.search(
        space, name, [QueryTerm(image=data)], k=k, filter=spec, min_score=min_score
    )
    return SearchResult(
        results=hits_public(space, name, answer.hits, ["metadata", "text", "uri", "document_id"]),
        took_ms=(time.perf_counter() - started) * 1000,
    )


@router.post("/path", dependencies=[ReadDep], summary="Walk from one term to another (slerp)")
def path(name: str, body: PathRequest, space: SpaceDep) -> PathResult:
    """``steps`` points on the great circle between the two terms; at each, the nearest
    item not used by an earlier step (the "morph" walk)."""
    steps = query.walk_path(
        space,
        name,
        query_term(body.from_, name="from"),
        query_term(body.to, name="to"),
        steps=body.steps,
        filter=body.filter,
    )
    out = []
    for step in steps:
        hit = hits_public(space, name, [step.hit], body.include)[0] if step.hit else None
        out.append(PathStepPublic(t=step.t, item=hit))
    return PathResult(steps=out)


@router.post(
    "/directions",
    status_code=status.HTTP_201_CREATED,
    dependencies=[AdminDep],
    summary="Store a direction: mean(positive) − mean(negative)",
)
def create_direction(name: str, body: DirectionCreate, space: SpaceDep) -> DirectionPublic:
    """Store (or replace) a named direction, usable afterwards as a ``{direction}`` term."""
    info = query.create_direction(
        space,
        name,
        body.name,
        [query_term(t, name=f"positive {i}") for i, t in enumerate(body.positive)],
        [query_term(t, name=f"negative {i}") for i, t in enumerate(body.negative)],
    )
    return _direction(info)


@router.get("/directions", dependencies=[ReadDep], summary="List directions")
def list_directions(name: str, space: SpaceDep) -> DirectionList:
    return DirectionList(directions=[_direction(d) for d in query.list_directions(space, name)])


@router.delete(
    "/directions/{direction}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[AdminDep],
    summary="Delete a direction",
)
def delete_direction(name: str, direction: str, space: SpaceDep) -> Response:
    query.delete_direction(space, name, direction)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
