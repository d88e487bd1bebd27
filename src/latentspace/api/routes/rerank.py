"""``POST /v1/rerank`` in the shape of Cohere's and Jina's rerank APIs."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from latentspace.api.deps import AuthorizedRoute, GrantDep, ReadDep, ServiceDep
from latentspace.api.errors import NOT_FOUND
from latentspace.service import rerank as reranking

__all__ = ["RerankRequest", "RerankResponse", "router"]

router = APIRouter(prefix="/v1", tags=["rerank"], route_class=AuthorizedRoute)


class RerankDocument(BaseModel):
    """A document as an object (Cohere and Jina accept ``{"text": ...}`` too)."""

    model_config = ConfigDict(extra="forbid")

    text: StrictStr


class RerankRequest(BaseModel):
    """Documents to order by relevance to ``query``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model": "tiny-shapes",
                    "query": "a red square",
                    "documents": ["a blue circle", "a red square", {"text": "a red star"}],
                    "top_n": 2,
                    "return_documents": True,
                }
            ]
        },
    )

    model: StrictStr = Field(min_length=1, max_length=512)
    query: StrictStr = Field(min_length=1)
    documents: list[StrictStr | RerankDocument] = Field(min_length=1)
    top_n: StrictInt | None = Field(default=None, ge=1)
    return_documents: StrictBool = False


class RerankResult(BaseModel):
    """One document, by its index in the request."""

    index: int
    relevance_score: float = Field(ge=0.0, le=1.0)
    document: RerankDocument | None = None


class RerankUsage(BaseModel):
    """Tokens the model read."""

    total_tokens: int


class RerankResponse(BaseModel):
    """The documents best first (at most ``top_n``)."""

    model: str
    results: list[RerankResult]
    usage: RerankUsage


@router.post(
    "/rerank",
    dependencies=[ReadDep],
    summary="Rerank documents against a query (Cohere/Jina-compatible)",
    responses=NOT_FOUND,
)
def rerank(body: RerankRequest, ctx: ServiceDep, grant: GrantDep) -> RerankResponse:
    """``model`` is a cross-encoder of ``LATENTSPACE_RERANK_MODELS`` or any model
    ``/v1/embeddings`` serves (its cosine, mapped to [0, 1])."""
    texts = [d if isinstance(d, str) else d.text for d in body.documents]
    done = reranking.rerank(
        ctx, body.model, body.query, texts, top_n=body.top_n, covers=grant.covers
    )
    results = [
        RerankResult(
            index=r.index,
            relevance_score=r.score,
            document=RerankDocument(text=texts[r.index]) if body.return_documents else None,
        )
        for r in done.results
    ]
    return RerankResponse(
        model=body.model, results=results, usage=RerankUsage(total_tokens=done.tokens)
    )
