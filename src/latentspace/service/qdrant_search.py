"""Qdrant's query API over the search pipeline: ``points/query`` (and its batch and
groups) and the older ``points/search`` (and its batch and groups).

A query is a vector, ``{"nearest": vector | point id, "mmr": {...}}``, a point id (the
nearest to that point's vector; the point itself is left out, as in the native API), or,
in a collection with a model, ``{"text": ...}`` or ``{"image": base64}`` embedded on the
server. Scores are Qdrant's: the cosine for Cosine, the dot product for Dot, and for
Euclid the distance (smaller is nearer; ``score_threshold`` is then the largest distance).
``params.hnsw_ef`` widens the walk; ``params.exact`` and ``params.quantization`` are taken
and left to the collection's own settings.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from latentspace import limits
from latentspace.errors import InvalidInput
from latentspace.index import SearchParams
from latentspace.service import collections, search
from latentspace.service.context import Context
from latentspace.service.diversity import GroupBy, Mmr
from latentspace.service.qdrant_filters import translate
from latentspace.service.qdrant_points import (
    bounded,
    item_id,
    payload_of,
    point_id,
    query_input,
    wants_vector,
)
from latentspace.service.queries import Hit, Query
from latentspace.service.terms import QueryTerm

__all__ = ["at_once", "batch", "legacy_batch", "legacy_body", "query", "query_groups"]

_OTHER_QUERIES = (
    "recommend",
    "discover",
    "context",
    "order_by",
    "fusion",
    "rrf",
    "formula",
    "sample",
)


def at_once(ctx: Context, name: str, body: dict[str, Any], *, most: int) -> bool:
    """Whether a query would run without waiting (see ``search.at_once``): one plain
    vector, no filter, MMR or groups, at most ``most`` hits, no vectors back."""
    limit, offset = body.get("limit", 10), body.get("offset") or 0
    return (
        isinstance(body.get("query"), list)
        and body.get("filter") is None
        and isinstance(limit, int)
        and isinstance(offset, int)
        and limit + offset <= most
        and not body.get("with_vector")
        and search.at_once(ctx, name)
    )


def _term(value: object, limit: int) -> tuple[QueryTerm, Mmr | None]:
    if value is None:
        raise InvalidInput("query: give a vector, {nearest: ...}, a point id, or {text: ...}")
    if isinstance(value, int | str) and not isinstance(value, bool):
        return QueryTerm(item=item_id(value, "query")), None
    if isinstance(value, dict) and "nearest" in value:
        term, _ = _term(value["nearest"], limit)
        mmr = value.get("mmr")
        if mmr is None:
            return term, None
        if not isinstance(mmr, dict):
            raise InvalidInput("query.mmr: {diversity, candidates_limit}")
        diversity = mmr.get("diversity", 0.5)
        if isinstance(diversity, bool) or not isinstance(diversity, int | float):
            raise InvalidInput(f"query.mmr.diversity: a number in [0, 1], got {diversity!r}")
        candidates = bounded(mmr.get("candidates_limit"), max(limit, 50), 1, 1000, "query.mmr")
        return term, Mmr(1.0 - float(diversity), candidates)
    if isinstance(value, dict):
        other = next((k for k in _OTHER_QUERIES if k in value), None)
        if other is not None:
            raise InvalidInput(f"query: {other!r} queries are not supported; use nearest")
    return QueryTerm(**query_input(value, "query")), None


def _query(ctx: Context, body: dict[str, Any], *, grouped: bool) -> Query:
    if not isinstance(body, dict):
        raise InvalidInput("a query request is an object")
    for unsupported in ("prefetch", "lookup_from", "shard_key", "with_lookup"):
        if body.get(unsupported) is not None:
            raise InvalidInput(f"{unsupported} is not supported")
    if body.get("using") not in (None, ""):
        raise InvalidInput("using: named vectors are not supported: a collection has one vector")
    max_k = ctx.settings.limits.max_k
    limit = bounded(body.get("limit"), 10, 1, max_k, "limit")
    term, mmr = _term(body.get("query"), limit)
    threshold = body.get("score_threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
    ):
        raise InvalidInput(f"score_threshold: a finite number, got {threshold!r}")
    params = body.get("params")
    if params is not None and not isinstance(params, dict):
        raise InvalidInput("params: an object such as {hnsw_ef: 128}")
    ef = bounded((params or {}).get("hnsw_ef"), 0, 1, 4096, "params.hnsw_ef")
    group_by = None
    if grouped:
        field = body.get("group_by")
        if not isinstance(field, str) or not field:
            raise InvalidInput("group_by: the payload key to group by")
        size = bounded(body.get("group_size"), 3, 1, max_k, "group_size")
        group_by = GroupBy(field, size, limit)
    payload_of({}, body.get("with_payload"))  # a bad selector fails before the search
    return Query(
        terms=[term],
        k=limit,
        filter=translate(body.get("filter")),
        min_score=threshold,
        offset=0 if grouped else bounded(body.get("offset"), 0, 0, max_k, "offset"),
        params=SearchParams(ef_search=ef) if ef else None,
        with_vectors=wants_vector(body.get("with_vector", False)),
        mmr=mmr,
        group_by=group_by,
    )


def _euclid(query: Query, metric: str) -> Query:
    # l2 scores are negated squared distances; Qdrant's threshold is a distance.
    if metric != "l2" or query.min_score is None:
        return query
    return replace(query, min_score=-(query.min_score**2))


def _scored(hit: Hit, metric: str, with_payload: object) -> dict[str, Any]:
    score = math.sqrt(max(0.0, -hit.score)) if metric == "l2" else hit.score
    return {
        "id": point_id(hit.id),
        "version": 0,
        "score": score,
        "payload": payload_of(hit.metadata, with_payload),
        "vector": hit.vector.tolist() if hit.vector is not None else None,
        "shard_key": None,
        "order_value": None,
    }


def query(ctx: Context, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Qdrant's ``QueryResponse``: the nearest points, best first.

    Raises:
        InvalidInput: a request outside what is supported, naming the field.
        NotFound: no such collection or query point.
    """
    metric = collections.get(ctx, name).metric
    answer = search.search(ctx, name, _euclid(_query(ctx, body, grouped=False), metric))
    with_payload = body.get("with_payload", False)
    return {"points": [_scored(h, metric, with_payload) for h in answer.hits]}


def query_groups(ctx: Context, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Qdrant's ``GroupsResult``: up to ``limit`` groups of the points that share the
    ``group_by`` key's value, ``group_size`` points each, the best group first.

    Raises:
        InvalidInput, NotFound: as :func:`query`.
    """
    metric = collections.get(ctx, name).metric
    answer = search.search(ctx, name, _euclid(_query(ctx, body, grouped=True), metric))
    with_payload = body.get("with_payload", False)
    return {
        "groups": [
            {
                "id": group.value,
                "hits": [_scored(h, metric, with_payload) for h in group.hits],
                "lookup": None,
            }
            for group in answer.groups or []
        ]
    }


def batch(ctx: Context, name: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Each query of ``searches`` answered as :func:`query` answers it.

    Raises:
        InvalidInput: no list of searches, or a bad one (naming its position);
            LimitExceeded: more than ``max_batch``.
    """
    searches = body.get("searches")
    if not isinstance(searches, list):
        raise InvalidInput("searches: a list of query requests")
    limits.check_batch(ctx.settings.limits, searches, "searches")
    out = []
    for i, one in enumerate(searches):
        try:
            out.append(query(ctx, name, one))
        except InvalidInput as e:
            raise type(e)(f"searches[{i}]: {e}") from None
    return out


def legacy_body(body: dict[str, Any]) -> dict[str, Any]:
    """An older ``points/search`` request as a ``points/query`` one (``vector`` may be
    ``{"name": "", "vector": [...]}``; other names are refused as named vectors).

    Raises:
        InvalidInput: no vector.
    """
    if not isinstance(body, dict) or "vector" not in body:
        raise InvalidInput("vector: the query vector")
    vector = body["vector"]
    if isinstance(vector, dict) and "vector" in vector:
        if vector.get("name") not in (None, ""):
            raise InvalidInput("vector.name: named vectors are not supported")
        vector = vector["vector"]
    out = {k: v for k, v in body.items() if k != "vector"}
    out["query"] = vector if isinstance(vector, list) else {"nearest": vector}
    out.setdefault("with_payload", False)
    return out


def legacy_batch(body: dict[str, Any]) -> dict[str, Any]:
    """An older ``points/search/batch`` request as a ``points/query/batch`` one.

    Raises:
        InvalidInput: no list of searches, or one without a vector.
    """
    searches = body.get("searches") if isinstance(body, dict) else None
    if not isinstance(searches, list):
        raise InvalidInput("searches: a list of search requests")
    return {"searches": [legacy_body(s) for s in searches]}
