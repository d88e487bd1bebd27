"""Embeddings by model name, as OpenAI's ``/v1/embeddings`` serves them.

A model may be named by spec (those in ``embedding_models`` and those of existing
collections) or by a collection's name (its model). Token-id input is refused: token ids
are model-specific.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from latentspace import limits
from latentspace.embedder import Encoder, count_tokens
from latentspace.errors import InvalidInput, NotFound
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.service.encoders import embed_texts

__all__ = ["Embedded", "embed", "encoder_for", "models"]


@dataclass(frozen=True)
class Embedded:
    """Vectors (one row per input, in order) and the tokens read."""

    vectors: np.ndarray
    tokens: int


def _allowed(ctx: Context, covers: Callable[[str], bool]) -> dict[str, str]:
    # name -> spec: configured specs, and the models and names of the collections covered
    allowed = {
        spec.strip(): spec.strip()
        for spec in ctx.settings.embedding_models.split(",")
        if spec.strip()
    }
    for row in collections.list_all(ctx):
        if row.model is not None and covers(row.name):
            allowed.setdefault(row.model, row.model)
            allowed.setdefault(row.name, row.model)
    return allowed


def models(ctx: Context, covers: Callable[[str], bool] = collections.every) -> list[str]:
    """The model names :func:`embed` accepts from a caller who reaches the collections
    ``covers`` accepts, sorted."""
    return sorted(_allowed(ctx, covers))


def encoder_for(
    ctx: Context, model: str, covers: Callable[[str], bool] = collections.every
) -> Encoder:
    """The encoder of ``model`` (a spec or a collection's name ``covers`` accepts) if it is
    served here.

    Raises:
        NotFound: it is not.
    """
    allowed = _allowed(ctx, covers)
    spec = allowed.get(model)
    if spec is None:
        raise NotFound(
            f"model {model!r} is not served here; use one of {sorted(allowed)} "
            "(LATENTSPACE_EMBEDDING_MODELS lists more)"
        )
    return ctx.live.encoders.get(spec)


def embed(
    ctx: Context,
    model: str,
    inputs: str | Sequence[object],
    *,
    dimensions: int | None = None,
    covers: Callable[[str], bool] = collections.every,
) -> Embedded:
    """Embed a string or a list of strings with ``model``.

    Raises:
        InvalidInput: empty input, token ids, a model that cannot embed text, or
            ``dimensions`` other than the model's.
        LimitExceeded: more inputs than ``max_batch``, or an over-long text.
        NotFound: the model is not served here.
    """
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    if not texts:
        raise InvalidInput("input is empty")
    strings = [t for t in texts if isinstance(t, str)]
    if len(strings) != len(texts):
        raise InvalidInput(
            "input must be a string or a list of strings; token ids are not accepted"
        )
    limit = ctx.settings.limits
    limits.check_batch(limit, strings, "inputs")
    encoder = encoder_for(ctx, model, covers)
    if "text" not in encoder.modalities:
        raise InvalidInput(f"model {model!r} cannot embed text")
    if dimensions is not None and dimensions != encoder.dim:
        raise InvalidInput(
            f"model {model!r} makes {encoder.dim}-d vectors; dimensions={dimensions} "
            "is not supported"
        )
    vectors = embed_texts(ctx.live.encoders, encoder, strings, limit)
    return Embedded(vectors, sum(count_tokens(encoder, t) for t in strings))
