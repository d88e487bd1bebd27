"""Search as a pipeline of small typed stages.

    plan      terms → one query vector (and what explain reports); filter → an id
              allow-list inside the index, or a post-filter predicate when it is broad
    retrieve  one ranked list of candidates per leg (today: the vector leg)
    fuse      the legs → one ranked list (one leg: itself)
    rerank    re-score the head of the list with a reranker, when the query asks for one
    page      leave out the query's own items, skip ``offset``, keep ``k``
    hydrate   one SQL read of the page's rows; hits whose rows are gone are dropped

Each stage is a function from one frozen value to the next, so keyword legs, fusion
methods and rerankers plug in as stages, not as branches in an old one. Paging comes before
hydrating so the SQL read is ``k`` rows, not ``offset + k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from latentspace import limits
from latentspace.errors import InvalidInput
from latentspace.index import SearchParams
from latentspace.index.algebra import Term, TermContribution, combine, explain, slerp_path
from latentspace.index.base import Predicate
from latentspace.service import collections
from latentspace.service import rerank as reranking
from latentspace.service.context import Context
from latentspace.service.terms import QueryTerm, resolve_terms
from latentspace.store import repository as repo
from latentspace.store.filters import count_nodes, matches
from latentspace.store.tables import CollectionRow
from latentspace.vectors import as_vector

__all__ = [
    "ALLOW_LIST_LIMIT",
    "Candidate",
    "Hit",
    "Leg",
    "PathStep",
    "Plan",
    "Query",
    "RerankStage",
    "SearchAnswer",
    "SearchParams",
    "fuse",
    "hydrate",
    "page",
    "plan",
    "plan_vector",
    "rerank",
    "retrieve",
    "run",
    "search",
    "search_vector",
    "walk_path",
]

# Filters matching at most this many items become an id allow-list inside FAISS; larger
# ones are applied after an oversampled search.
ALLOW_LIST_LIMIT = 50_000


@dataclass(frozen=True)
class Query:
    """What a caller asks: terms and how to search with them."""

    terms: Sequence[QueryTerm]
    k: int = 10
    filter: dict[str, Any] | None = None
    min_score: float | None = None
    offset: int = 0
    params: SearchParams | None = None
    explain: bool = False
    exclude_query_items: bool = True
    with_vectors: bool = False
    rerank: RerankStage | None = None


@dataclass(frozen=True)
class RerankStage:
    """Re-score the first ``candidates`` of the list with ``model`` against ``query`` (the
    query's text when not given); the hits' scores become the reranker's relevance."""

    model: str
    candidates: int = 50
    query: str | None = None


@dataclass(frozen=True)
class Plan:
    """A query made concrete: the vector, the filter's form, the window to return."""

    collection: CollectionRow
    vector: np.ndarray
    k: int
    offset: int = 0
    min_score: float | None = None
    params: SearchParams | None = None
    allow: np.ndarray | None = None
    predicate: Predicate | None = None
    exclude: frozenset[int] = frozenset()
    terms: tuple[Term, ...] = ()
    explain: bool = False
    with_vectors: bool = False
    rerank: RerankStage | None = None
    rerank_query: str = ""

    @property
    def depth(self) -> int:
        """How many candidates each leg must fetch so the page (and the reranker's window)
        can be filled."""
        window = self.rerank.candidates if self.rerank is not None else 0
        return max(self.k + self.offset, window) + len(self.exclude)


@dataclass(frozen=True)
class Candidate:
    """An item id with its score (higher is better) in a ranked list."""

    item_id: int
    score: float


@dataclass(frozen=True)
class Leg:
    """One retriever's ranked candidates."""

    name: str
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class Hit:
    """One search result."""

    id: str
    score: float
    metadata: dict[str, Any]
    text: str | None
    uri: str | None
    document_id: str | None
    item_id: int
    sha256: str = ""
    vector: np.ndarray | None = None


@dataclass(frozen=True)
class PathStep:
    """One step of a walk: its position ``t`` in [0, 1] and the nearest unused item."""

    t: float
    hit: Hit | None


@dataclass(frozen=True)
class SearchAnswer:
    """Hits, and (when asked) how each term shaped the query."""

    hits: list[Hit]
    contributions: list[TermContribution] | None


# -- plan ------------------------------------------------------------------------------------
def plan(ctx: Context, name: str, query: Query) -> Plan:
    """Resolve the terms into one unit vector and the filter into an allow-list or predicate.

    Raises:
        InvalidInput: bad terms or filter; LimitExceeded: k over the limit.
        NotFound: unknown collection, item or direction.
    """
    limits.check_k(ctx.settings.limits, query.k)
    collection = collections.get(ctx, name)
    terms, used = resolve_terms(ctx, collection, query.terms)
    vector = combine(terms, dim=collection.dim)
    base = plan_vector(
        ctx,
        collection,
        vector,
        query.k,
        filter=query.filter,
        min_score=query.min_score,
        offset=query.offset,
        params=query.params,
    )
    exclude = frozenset(used) if query.exclude_query_items else frozenset()
    return replace(
        base,
        exclude=exclude,
        terms=tuple(terms),
        explain=query.explain,
        with_vectors=query.with_vectors,
        rerank=query.rerank,
        rerank_query=_rerank_query(query) if query.rerank is not None else "",
    )


def _rerank_query(query: Query) -> str:
    assert query.rerank is not None
    if query.rerank.query is not None:
        return query.rerank.query
    texts = [t.text for t in query.terms if t.text is not None and t.weight > 0]
    if len(texts) != 1:
        raise InvalidInput(
            "rerank needs the query's text: give rerank.query, or one text term "
            f"(this query has {len(texts)})"
        )
    return texts[0]


def plan_vector(
    ctx: Context,
    collection: CollectionRow,
    vector: np.ndarray,
    k: int,
    *,
    filter: dict[str, Any] | None = None,
    min_score: float | None = None,
    offset: int = 0,
    params: SearchParams | None = None,
) -> Plan:
    """The plan of a search with one vector (no terms)."""
    query = as_vector(vector, dim=collection.dim, name="query vector")
    allow = predicate = None
    if filter is not None:
        limit = ctx.settings.limits
        limits.check(limit, "max_filter_nodes", count_nodes(filter), "nodes", "filter")
        limits.check_json(limit, filter, name="filter")
        with ctx.sessions() as session:
            matching = repo.filter_item_ids(
                session=session,
                collection=collection,
                spec=filter,
                limit=ALLOW_LIST_LIMIT + 1,
                deadline=limit.max_query_seconds,
            )
        if matching.shape[0] <= ALLOW_LIST_LIMIT:
            allow = matching
        else:
            predicate = _metadata_predicate(ctx, filter)
    return Plan(collection, query, k, offset, min_score, params, allow, predicate)


def _metadata_predicate(ctx: Context, spec: dict[str, Any]) -> Predicate:
    # The post-filter for broad filters: candidates' metadata checked with the reference
    # semantics, which the tests hold equal to the SQL the allow-list path runs.
    def predicate(ids: np.ndarray) -> np.ndarray:
        with ctx.sessions() as session:
            rows = repo.items_by_ids(session=session, item_ids=ids.tolist())
        keep = [i for i, row in rows.items() if matches(spec, row.metadata_)]
        return np.isin(ids, keep)

    return predicate


# -- retrieve, fuse, rerank, page, hydrate ---------------------------------------------------
def retrieve(ctx: Context, plan: Plan) -> list[Leg]:
    """One ranked list per retriever; each fetches ``plan.depth`` candidates."""
    result = ctx.indexes.search(
        plan.collection,
        plan.vector[None, :],
        plan.depth,
        params=plan.params,
        allow=plan.allow,
        predicate=plan.predicate,
        min_score=plan.min_score,
    )
    return [Leg("vector", tuple(Candidate(i, s) for i, s in result.hits(0)))]


def fuse(legs: Sequence[Leg]) -> list[Candidate]:
    """The legs' candidates as one ranked list (a single leg is returned as it is)."""
    (leg,) = legs
    return list(leg.candidates)


def rerank(ctx: Context, plan: Plan, candidates: list[Candidate]) -> list[Candidate]:
    """Reorder the first ``rerank.candidates`` by the reranker's relevance to the query
    text; items without text go after them, in their order. Identity without a reranker."""
    if plan.rerank is None:
        return candidates
    kept = [c for c in candidates if c.item_id not in plan.exclude]
    head, tail = kept[: plan.rerank.candidates], kept[plan.rerank.candidates :]
    with ctx.sessions() as session:
        rows = repo.hit_rows(session=session, item_ids=[c.item_id for c in head])
    texts = [(c, rows[c.item_id].text) for c in head if c.item_id in rows]
    scored = [(c, t) for c, t in texts if t]
    if not scored:
        return kept
    ranked = reranking.rerank(ctx, plan.rerank.model, plan.rerank_query, [t for _, t in scored])
    reordered = [Candidate(scored[r.index][0].item_id, r.score) for r in ranked.results]
    no_text = [c for c, t in texts if not t]
    return reordered + no_text + tail


def page(plan: Plan, candidates: list[Candidate]) -> list[Candidate]:
    """Leave out the items the query was built from, skip ``offset``, keep ``k``."""
    kept = [c for c in candidates if c.item_id not in plan.exclude]
    return kept[plan.offset : plan.offset + plan.k]


def hydrate(ctx: Context, plan: Plan, candidates: list[Candidate]) -> list[Hit]:
    """The candidates' rows in one SQL read (their vectors in a second, when asked for);
    candidates no longer live are dropped."""
    ids = [c.item_id for c in candidates]
    vectors: dict[int, np.ndarray] = {}
    with ctx.sessions() as session:
        rows = repo.hit_rows(session=session, item_ids=ids)
        if plan.with_vectors and ids:
            vectors = repo.vectors_of(session=session, item_ids=ids, dim=plan.collection.dim)
    return [
        Hit(
            row.external_id,
            c.score,
            row.metadata_,
            row.text,
            row.uri,
            row.document_id,
            row.id,
            row.sha256,
            vectors.get(c.item_id),
        )
        for c in candidates
        if (row := rows.get(c.item_id)) is not None
    ]


def run(ctx: Context, plan: Plan) -> list[Hit]:
    """Every stage after planning: retrieve → fuse → rerank → page → hydrate."""
    candidates = rerank(ctx, plan, fuse(retrieve(ctx, plan)))
    return hydrate(ctx, plan, page(plan, candidates))


# -- entry points ----------------------------------------------------------------------------
def search(ctx: Context, name: str, query: Query) -> SearchAnswer:
    """Search with the normalised weighted sum of ``query.terms``.

    Items named by ``item`` terms are left out of the results unless
    ``exclude_query_items`` is false (as Qdrant's recommend does).
    """
    planned = plan(ctx, name, query)
    hits = run(ctx, planned)
    contributions = explain(list(planned.terms), planned.vector) if planned.explain else None
    return SearchAnswer(hits, contributions)


def search_vector(
    ctx: Context,
    name: str,
    vector: np.ndarray,
    k: int = 10,
    *,
    filter: dict[str, Any] | None = None,
    min_score: float | None = None,
    offset: int = 0,
    params: SearchParams | None = None,
    with_vectors: bool = False,
) -> list[Hit]:
    """The ``k`` live items nearest ``vector`` that match ``filter``."""
    collection = collections.get(ctx, name)
    planned = plan_vector(
        ctx,
        collection,
        vector,
        k,
        filter=filter,
        min_score=min_score,
        offset=offset,
        params=params,
    )
    return run(ctx, replace(planned, with_vectors=with_vectors))


def walk_path(
    ctx: Context,
    name: str,
    start: QueryTerm,
    end: QueryTerm,
    *,
    steps: int,
    filter: dict[str, Any] | None = None,
    with_vectors: bool = False,
) -> list[PathStep]:
    """Slerp from ``start`` to ``end`` in ``steps`` and take the nearest unused item at each.

    No item appears twice, so a walk between two stored items starts at the first and, when
    the walk has steps to spare, ends at the second.

    Raises:
        InvalidInput: fewer than 2 steps; LimitExceeded: more than ``max_path_steps``.
    """
    if steps < 2:
        raise InvalidInput(f"a path needs at least 2 steps, got {steps}")
    limits.check(ctx.settings.limits, "max_path_steps", steps, "steps", "path")
    collection = collections.get(ctx, name)
    (a, b), _ = resolve_terms(ctx, collection, [start, end])
    points = slerp_path(a.vector, b.vector, steps)
    seen: set[int] = set()
    out = []
    for t, point in zip(np.linspace(0.0, 1.0, steps).tolist(), points, strict=True):
        # k = used + 1 always leaves one unused item, unless the collection runs out.
        hits = search_vector(
            ctx, name, point, len(seen) + 1, filter=filter, with_vectors=with_vectors
        )
        hit = next((h for h in hits if h.item_id not in seen), None)
        if hit is not None:
            seen.add(hit.item_id)
        out.append(PathStep(float(t), hit))
    return out
