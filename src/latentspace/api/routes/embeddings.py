"""``POST /v1/embeddings`` and ``GET /v1/models``, compatible with the OpenAI API."""

from __future__ import annotations

import base64
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from latentspace.api.deps import AuthorizedRoute, GrantDep, ReadDep, ServiceDep
from latentspace.api.schemas.common import OpenAIError
from latentspace.service import embeddings

__all__ = ["EmbeddingsRequest", "EmbeddingsResponse", "router"]

router = APIRouter(prefix="/v1", tags=["embeddings"], route_class=AuthorizedRoute)


# these routes answer errors in OpenAI's shape (see api.errors.error_body), not as problems
def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": OpenAIError, "description": HTTPStatus(s).phrase} for s in statuses}


_ERRORS = _errors(400, 401, 403, 408, 413, 422, 429, 503)


# OpenAI takes token ids as input too (refused here: a model spec names no tokenizer's ids)
TokenId = Annotated[int, Field(ge=0, le=2**31 - 1)]


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request. ``model`` is a model spec or a collection's name."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"model": "tiny-shapes", "input": "a red square"},
                {"model": "tiny-shapes", "input": ["a", "b"], "encoding_format": "base64"},
            ]
        }
    )

    model: str = Field(min_length=1, max_length=512)
    input: str | list[str] | list[TokenId] | list[list[TokenId]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=65_536)
    user: str | None = Field(default=None, max_length=256)


class Embedding(BaseModel):
    """One vector (a list of floats, or base64 of little-endian float32)."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    """Tokens read, counted with the model's tokenizer."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    """OpenAI's embeddings response."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    """A model /v1/embeddings may use."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "latentspace"


class ModelList(BaseModel):
    """OpenAI's model list."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


@router.post(
    "/embeddings",
    dependencies=[ReadDep],
    summary="Embed texts (OpenAI-compatible)",
    responses={**_ERRORS, **_errors(404)},
)
def create_embeddings(
    body: EmbeddingsRequest, ctx: ServiceDep, grant: GrantDep
) -> EmbeddingsResponse:
    """Works unchanged with the ``openai`` client's ``embeddings.create``. Token-id input is
    not accepted (token ids are model-specific); send strings."""
    done = embeddings.embed(
        ctx, body.model, body.input, dimensions=body.dimensions, covers=grant.covers
    )
    data = [
        Embedding(
            index=i,
            embedding=base64.b64encode(v.astype("<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else v.tolist(),
        )
        for i, v in enumerate(done.vectors)
    ]
    usage = Usage(prompt_tokens=done.tokens, total_tokens=done.tokens)
    return EmbeddingsResponse(data=data, model=body.model, usage=usage)


@router.get(
    "/models",
    dependencies=[ReadDep],
    summary="Models /v1/embeddings serves",
    responses=_ERRORS,
)
def list_models(ctx: ServiceDep, grant: GrantDep) -> ModelList:
    return ModelList(data=[ModelCard(id=name) for name in embeddings.models(ctx, grant.covers)])
