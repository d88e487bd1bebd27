"""Reranking: score documents against a query, best first, as Cohere's and Jina's
``/v1/rerank`` do.

Two kinds of model: a cross-encoder named in ``LATENTSPACE_RERANK_MODELS``
(``cross:/folder``), which reads each (query, document) pair together; or any embedding
model ``/v1/embeddings`` serves (a spec or a collection's name), which scores each document
by its cosine to the query, mapped to [0, 1] as (1 + cosine) / 2 (a stronger model re-scoring
the candidates of a fast first stage).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from latentspace import limits
from latentspace.embedder import count_tokens
from latentspace.errors import InvalidInput
from latentspace.service import collections, embeddings
from latentspace.service.context import Context
from latentspace.service.encoders import embed_texts

__all__ = ["Ranked", "Reranked", "models", "rerank"]


@dataclass(frozen=True)
class Ranked:
    """One document's place: its index in the request and its relevance in [0, 1]."""

    index: int
    score: float


@dataclass(frozen=True)
class Reranked:
    """The documents best first (at most ``top_n``), and the tokens the model read."""

    results: list[Ranked]
    tokens: int


def models(ctx: Context, covers: Callable[[str], bool] = collections.every) -> list[str]:
    """The model names :func:`rerank` accepts: cross-encoders, then embedding models (those
    of the collections ``covers`` accepts)."""
    return [*ctx.live.rerankers.specs, *embeddings.models(ctx, covers)]


def rerank(
    ctx: Context,
    model: str,
    query: str,
    documents: Sequence[str],
    *,
    top_n: int | None = None,
    covers: Callable[[str], bool] = collections.every,
) -> Reranked:
    """``documents`` ordered by relevance to ``query`` under ``model``.

    Raises:
        InvalidInput: an empty query, no documents, or a model that cannot embed text.
        LimitExceeded: more documents (or a top_n over) than ``max_batch``, or an over-long
            text.
        NotFound: the model is not served here.
        ModelUnavailable, ModelInvalid: a configured cross-encoder that does not load.
    """
    limit = ctx.settings.limits
    if not query.strip():
        raise InvalidInput("query is empty")
    if not documents:
        raise InvalidInput("documents is empty")
    limits.check_batch(limit, documents, "documents")
    if top_n is not None:
        limits.check(limit, "max_batch", top_n, "results", "top_n")
    limits.check_text(limit, query, name="query")
    for i, text in enumerate(documents):
        limits.check_text(limit, text, name=f"document {i}")
    if model in ctx.live.rerankers.specs:
        scorer = ctx.live.rerankers.get(model)
        scores = scorer.score(query, documents)
        tokens = scorer.count_tokens(query, documents)
    else:
        encoder = embeddings.encoder_for(ctx, model, covers)
        vectors = embed_texts(ctx.live.encoders, encoder, [query, *documents], limit)
        scores = (1.0 + np.clip(vectors[1:] @ vectors[0], -1.0, 1.0)) / 2.0
        tokens = sum(count_tokens(encoder, t) for t in [query, *documents])
    order = sorted(range(len(documents)), key=lambda i: (-float(scores[i]), i))
    kept = order[:top_n] if top_n is not None else order
    return Reranked([Ranked(i, float(scores[i])) for i in kept], tokens)
