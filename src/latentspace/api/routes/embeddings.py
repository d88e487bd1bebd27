"""``POST /v1/embeddings`` and ``GET /v1/models``, compatible with the OpenAI API."""

from __future__ import annotations

import base64
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from latentspace.api.deps import AuthorizedRoute, ReadDep, SpaceDep
from latentspace.embedder import Encoder, count_tokens
from latentspace.errors import InvalidInput, LimitExceeded, NotFound
from latentspace.service import LatentSpace
from latentspace.service.embedding import embed_texts

__all__ = ["EmbeddingsRequest", "EmbeddingsResponse", "router"]

router = APIRouter(prefix="/v1", tags=["embeddings"], route_class=AuthorizedRoute)


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
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
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


def _allowed(space: LatentSpace) -> dict[str, str]:
    # name -> spec: configured specs, collections' models, and collections by name.
    allowed = {
        spec.strip(): spec.strip()
        for spec in space.settings.embedding_models.split(",")
        if spec.strip()
    }
    for row in space.list_collections():
        if row.model is not None:
            allowed.setdefault(row.model, row.model)
            allowed.setdefault(row.name, row.model)
    return allowed


def _encoder(space: LatentSpace, model: str) -> Encoder:
    spec = _allowed(space).get(model)
    if spec is None:
        raise NotFound(
            f"model {model!r} is not served here; use one of {sorted(_allowed(space))} "
            "(LATENTSPACE_EMBEDDING_MODELS lists more)"
        )
    return space.encoders.get(spec)


@router.post("/embeddings", dependencies=[ReadDep], summary="Embed texts (OpenAI-compatible)")
def create_embeddings(body: EmbeddingsRequest, space: SpaceDep) -> EmbeddingsResponse:
    """Works unchanged with the ``openai`` client's ``embeddings.create``. Token-id input is
    not accepted (token ids are model-specific); send strings."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts:
        raise InvalidInput("input is empty")
    if not all(isinstance(t, str) for t in texts):
        raise InvalidInput(
            "input must be a string or a list of strings; token ids are not accepted"
        )
    limits = space.settings.limits
    if len(texts) > limits.max_batch:
        raise LimitExceeded(f"{len(texts)} inputs, over the batch limit of {limits.max_batch}")
    encoder = _encoder(space, body.model)
    if "text" not in encoder.modalities:
        raise InvalidInput(f"model {body.model!r} cannot embed text")
    if body.dimensions is not None and body.dimensions != encoder.dim:
        raise InvalidInput(
            f"model {body.model!r} makes {encoder.dim}-d vectors; dimensions={body.dimensions} "
            "is not supported"
        )
    strings = [str(t) for t in texts]
    vectors = embed_texts(space.encoders, encoder, strings, limits)
    tokens = sum(count_tokens(encoder, t) for t in strings)
    data = [
        Embedding(
            index=i,
            embedding=base64.b64encode(v.astype("<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else v.tolist(),
        )
        for i, v in enumerate(vectors)
    ]
    return EmbeddingsResponse(
        data=data, model=body.model, usage=Usage(prompt_tokens=tokens, total_tokens=tokens)
    )


@router.get("/models", dependencies=[ReadDep], summary="Models /v1/embeddings serves")
def list_models(space: SpaceDep) -> ModelList:
    return ModelList(data=[ModelCard(id=name) for name in sorted(_allowed(space))])
