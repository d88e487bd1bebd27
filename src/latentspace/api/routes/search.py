"""Search (one term or a weighted sum of terms), image upload search, directions, paths."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from latentspace.api.convert import (
    form_object,
    hits_public,
    json_response,
    query_term,
    upload_bytes,
)
from latentspace.api.deps import AdminDep, AuthorizedRoute, ReadDep, ServiceDep
from latentspace.api.errors import NOT_FOUND, problem_responses
from latentspace.api.lean import inline_when
from latentspace.api.schemas import (
    CompositeQuery,
    DirectionCreate,
    DirectionList,
    DirectionPublic,
    ExplainTerm,
    HitGroupPublic,
    PathRequest,
    PathResult,
    PathStepPublic,
    SearchRequest,
    SearchResult,
)
from latentspace.api.schemas.common import DEFAULT_INCLUDE
from latentspace.service import Context, Query, QueryTerm, directions, paths, search
from latentspace.service.directions import DirectionInfo
from latentspace.service.diversity import GroupBy, Mmr
from latentspace.service.search import Fusion, RerankStage, SearchParams

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/collections/{name}",
    tags=["search"],
    route_class=AuthorizedRoute,
    responses=NOT_FOUND,
)


def _direction(info: DirectionInfo) -> DirectionPublic:
    return DirectionPublic(
        name=info.name, norm=info.norm, definition=info.definition, created_at=info.created_at
    )


_AT_ONCE_HITS = 100


def _at_once(name: str, body: SearchRequest, ctx: Context) -> bool:
    # A lone vector, no filter, reranker or vectors asked back, a page of at most 100, on an
    # open index no write holds: FAISS and the hit cache answer it in well under a
    # millisecond, less than the thread pool's hand-over costs, so it runs on the event loop.
    term = body.query
    return (
        not isinstance(term, CompositeQuery)
        and term.vector is not None
        and body.k + body.offset <= _AT_ONCE_HITS
        and body.filter is None
        and body.rerank is None
        and body.consistency is None
        and body.ids is None
        and body.mmr is None
        and body.group_by is None
        and "vector" not in body.include
        and search.at_once(ctx, name)
    )


@router.post(
    "/search",
    dependencies=[ReadDep],
    response_model=SearchResult,
    responses=problem_responses(409),  # a consistency.min_seq no write of it has
    summary="Search with one term or a sum of terms",
)
@inline_when(_at_once)
def search_items(name: str, body: SearchRequest, ctx: ServiceDep) -> Response:
    """Nearest items to ``normalise(Σ weight·term)``. A term is ``{text}``, ``{image}``
    (base64), ``{item}`` (a stored item's vector), ``{vector}`` or ``{direction}``; a
    ``{keyword}`` term adds a BM25 leg over the items' text, fused with the vector leg
    (``fusion``). Items named by ``item`` terms are left out of the results
    (``exclude_query_items``)."""
    started = time.perf_counter()
    terms = body.query.terms if isinstance(body.query, CompositeQuery) else [body.query]
    query = Query(
        terms=[
            query_term(t, name=f"term {i}" if len(terms) > 1 else "query")
            for i, t in enumerate(terms)
        ],
        k=body.k,
        filter=body.filter,
        min_score=body.min_score,
        offset=body.offset,
        params=SearchParams(
            nprobe=body.params.nprobe,
            ef_search=body.params.ef_search,
            rescore=body.params.rescore,
        )
        if body.params is not None
        else None,
        explain=body.explain,
        exclude_query_items=body.exclude_query_items,
        with_vectors="vector" in body.include,
        rerank=RerankStage(body.rerank.model, body.rerank.candidates, body.rerank.query)
        if body.rerank is not None
        else None,
        fusion=Fusion(body.fusion.method, body.fusion.k, body.fusion.depth)
        if body.fusion is not None
        else None,
        min_seq=body.consistency.min_seq if body.consistency is not None else None,
        ids=body.ids,
        mmr=Mmr(body.mmr.lambda_, body.mmr.candidates) if body.mmr is not None else None,
        group_by=GroupBy(
            body.group_by.field,
            body.group_by.size,
            body.group_by.groups if body.group_by.groups is not None else body.k,
        )
        if body.group_by is not None
        else None,
    )
    answer = search.search(ctx, name, query)
    result = SearchResult(
        results=hits_public(answer.hits, body.include),
        groups=[
            HitGroupPublic(value=g.value, hits=hits_public(g.hits, body.include))
            for g in answer.groups
        ]
        if answer.groups is not None
        else None,
        explain=[
            ExplainTerm(term=c.label, weight=c.weight, cosine=c.cosine)
            for c in answer.contributions
        ]
        if answer.contributions is not None
        else None,
        matched=answer.matched,
        strategy=answer.strategy,
        took_ms=(time.perf_counter() - started) * 1000,
    )
    return json_response(result)


@router.post(
    "/search/image",
    dependencies=[ReadDep],
    summary="Search with an uploaded image (multipart)",
)
def search_image(
    name: str,
    ctx: ServiceDep,
    file: Annotated[UploadFile, File(description="The query image.")],
    k: Annotated[int, Form(ge=1)] = 10,
    filter: Annotated[str | None, Form(description="A filter as JSON.")] = None,
    min_score: Annotated[float | None, Form(allow_inf_nan=False)] = None,
) -> SearchResult:
    """The ``k`` items nearest the image."""
    started = time.perf_counter()
    data, too_large = upload_bytes(file, ctx.settings.limits, name=file.filename or "image")
    if too_large is not None:
        raise too_large
    query = Query(
        terms=[QueryTerm(image=data)],
        k=k,
        filter=form_object(filter, field="filter"),
        min_score=min_score,
    )
    answer = search.search(ctx, name, query)
    return SearchResult(
        results=hits_public(answer.hits, DEFAULT_INCLUDE),
        matched=answer.matched,
        took_ms=(time.perf_counter() - started) * 1000,
    )


@router.post("/path", dependencies=[ReadDep], summary="Walk from one term to another (slerp)")
def walk_path(name: str, body: PathRequest, ctx: ServiceDep) -> PathResult:
    """``steps`` points on the great circle between the two terms; at each, the nearest
    item not used by an earlier step (the "morph" walk)."""
    steps = paths.walk_path(
        ctx,
        name,
        query_term(body.from_, name="from"),
        query_term(body.to, name="to"),
        steps=body.steps,
        filter=body.filter,
        with_vectors="vector" in body.include,
    )
    return PathResult(
        steps=[
            PathStepPublic(
                t=step.t,
                item=hits_public([step.hit], body.include)[0] if step.hit else None,
            )
            for step in steps
        ]
    )


@router.post(
    "/directions",
    status_code=status.HTTP_201_CREATED,
    dependencies=[AdminDep],
    summary="Store a direction: mean(positive) − mean(negative)",
)
def create_direction(name: str, body: DirectionCreate, ctx: ServiceDep) -> DirectionPublic:
    """Store (or replace) a named direction, usable afterwards as a ``{direction}`` term."""
    info = directions.create(
        ctx,
        name,
        body.name,
        [query_term(t, name=f"positive {i}") for i, t in enumerate(body.positive)],
        [query_term(t, name=f"negative {i}") for i, t in enumerate(body.negative)],
    )
    return _direction(info)


@router.get("/directions", dependencies=[ReadDep], summary="List directions")
def list_directions(name: str, ctx: ServiceDep) -> DirectionList:
    return DirectionList(directions=[_direction(d) for d in directions.list_all(ctx, name)])


@router.delete(
    "/directions/{direction}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[AdminDep],
    summary="Delete a direction",
)
def delete_direction(name: str, direction: str, ctx: ServiceDep) -> Response:
    directions.delete(ctx, name, direction)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
