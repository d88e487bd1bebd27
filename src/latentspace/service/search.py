"""Search as a pipeline of small typed stages.

    plan      terms → one query vector (and what explain reports); filter → an id
              allow-list inside the index, or a post-filter predicate when it is broad
    retrieve  one ranked list of candidates per leg: the vector leg (every term that is a
              vector, summed) and one BM25 leg per keyword term
    fuse      the legs → one ranked list with scores in [0, 1] (one leg: itself); see fusion
    rerank    re-score the head of the list with a reranker, when the query asks for one
    diversify MMR over the head of the list, when asked; or group the hits by a field
              (``group_by``: then the groups are the page; see diversity)
    page      leave out the query's own items, skip ``offset``, keep ``k``
    hydrate   the page's rows from the hit cache (one SQL read of those it lacks); hits
              whose rows are gone are dropped

Each stage is a function from one frozen value to the next, so legs, fusion methods and
rerankers plug in as stages, not as branches in an old one. Filters apply inside every leg,
each leg fetches ``offset + k`` (or the reranker's window, or with several legs the fusion
depth, when larger), and paging comes after fusion
and before hydrating, so the SQL read is ``k`` rows, not ``offset + k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from latentspace import limits
from latentspace.errors import InvalidInput
from latentspace.index import SearchParams
from latentspace.index.algebra import Term, combine, explain
from latentspace.index.base import Predicate, both, outside
from latentspace.index.fusion import Candidate, Fusion, Leg, LegScore
from latentspace.index.fusion import fuse as fuse_legs
from latentspace.index.spec import exact_below
from latentspace.service import collections, diversity, replica
from latentspace.service import rerank as reranking
from latentspace.service.context import Context
from latentspace.service.matching import expired_ids, matching_ids
from latentspace.service.queries import (
    Hit,
    HitGroup,
    KeywordLeg,
    Plan,
    Query,
    RerankStage,
    SearchAnswer,
)
from latentspace.service.terms import QueryTerm, resolve_terms
from latentspace.store import lookups
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow
from latentspace.types import FilterStrategy
from latentspace.vectors import as_vector

__all__ = [
    "ALLOW_LIST_LIMIT",
    "ALLOW_LIST_SHARE",
    "Candidate",
    "Fusion",
    "Hit",
    "KeywordLeg",
    "Leg",
    "Plan",
    "Query",
    "RerankStage",
    "SearchAnswer",
    "SearchParams",
    "at_once",
    "diversify",
    "fuse",
    "hydrate",
    "page",
    "plan",
    "plan_vector",
    "rerank",
    "retrieve",
    "run",
    "run_grouped",
    "search",
    "search_vector",
]

# Filters matching at most this many items, or this share of the collection, become an id
# allow-list inside FAISS (scored exactly when short, else a selector on the walk); broader
# ones check an oversampled search's hits. At a million items a 10 % filter checked after
# the walk found 0.936 of the true top 10 (bench/bench_scale.py); the selector keeps the
# walk's own recall.
ALLOW_LIST_LIMIT = 50_000
ALLOW_LIST_SHARE = 0.2


# -- plan ------------------------------------------------------------------------------------
def plan(ctx: Context, name: str, query: Query) -> Plan:
    """Resolve the terms into one unit vector and the filter into an allow-list or predicate.

    Raises:
        InvalidInput: bad terms or filter; LimitExceeded: k over the limit.
        NotFound: unknown collection, item or direction.
        Conflict, Unavailable: ``min_seq`` is no write's, or was not reached in time.
    """
    limits.check_k(ctx.settings.limits, query.k)
    _check_diversity(ctx, query)
    collection = collections.get(ctx, name)
    if query.min_seq:
        replica.reach(ctx, collection, query.min_seq)
    keywords = _keyword_legs(ctx, query.terms)
    vector_terms = [t for t in query.terms if t.kind != "keyword"]
    terms, used = resolve_terms(ctx, collection, vector_terms) if vector_terms else ([], [])
    base = plan_vector(
        ctx,
        collection,
        _query_vector(collection, terms) if terms else None,
        query.k,
        filter=query.filter,
        min_score=query.min_score,
        offset=query.offset,
        params=query.params,
        ids=query.ids,
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
        keywords=keywords,
        fusion=query.fusion or Fusion(),
        mmr=query.mmr,
        group_by=query.group_by,
    )


def _query_vector(collection: CollectionRow, terms: Sequence[Term]) -> np.ndarray:
    # One plain term in an ip or l2 collection is searched as given (a dot product or a
    # distance to that very vector, as FAISS and Qdrant do); a sum of terms is a direction.
    if collection.metric != "cosine" and len(terms) == 1 and terms[0].weight == 1.0:
        return as_vector(terms[0].vector, dim=collection.dim, name="the query vector")
    return combine(terms, dim=collection.dim)


def _check_diversity(ctx: Context, query: Query) -> None:
    # MMR picks a page from its pool, grouping makes its own page: each is checked against
    # what it must deliver, and the two do not combine.
    if query.mmr is not None and query.group_by is not None:
        raise InvalidInput("give mmr or group_by, not both")
    if query.mmr is not None and query.mmr.candidates < query.k + query.offset:
        raise InvalidInput(
            f"mmr.candidates ({query.mmr.candidates}) must be at least k + offset "
            f"({query.k + query.offset}): MMR chooses the page from them"
        )
    if query.rerank is not None:  # each candidate costs a cross-encoder pass: bounded as k is
        limits.check(ctx.settings.limits, "max_k", query.rerank.candidates, "", "rerank.candidates")
    if query.group_by is not None:
        if query.offset:
            raise InvalidInput("group_by takes no offset: ask for more groups instead")
        total = query.group_by.groups * query.group_by.size
        limits.check(ctx.settings.limits, "max_k", total, "hits", "group_by (groups × size)")


def _keyword_legs(ctx: Context, terms: Sequence[QueryTerm]) -> tuple[KeywordLeg, ...]:
    given = [t for t in terms if t.kind == "keyword"]
    legs = []
    for i, term in enumerate(given):
        assert term.keyword is not None
        limits.check_text(ctx.settings.limits, term.keyword, name="keyword term")
        if not term.weight > 0:
            raise InvalidInput(
                f"a keyword term's weight is its leg's weight in fusion and must be > 0, "
                f"got {term.weight}"
            )
        name = "keyword" if len(given) == 1 else f"keyword {i + 1}"
        legs.append(KeywordLeg(term.keyword, float(term.weight), name))
    return tuple(legs)


def _rerank_query(query: Query) -> str:
    assert query.rerank is not None
    if query.rerank.query is not None:
        return query.rerank.query
    texts = [t.text for t in query.terms if t.text is not None and t.weight > 0]
    texts = texts or [t.keyword for t in query.terms if t.keyword is not None]
    if len(texts) != 1:
        raise InvalidInput(
            "rerank needs the query's text: give rerank.query, or one text (or keyword) term "
            f"(this query has {len(texts)})"
        )
    return texts[0]


def plan_vector(
    ctx: Context,
    collection: CollectionRow,
    vector: np.ndarray | None,
    k: int,
    *,
    filter: dict[str, Any] | None = None,
    min_score: float | None = None,
    offset: int = 0,
    params: SearchParams | None = None,
    ids: Sequence[str] | None = None,
) -> Plan:
    """The plan of a search with one vector (no terms; None: no vector leg); ``ids``, when
    given, are the only items it may find (ANDed with ``filter``)."""
    query = (
        as_vector(vector, dim=collection.dim, name="query vector") if vector is not None else None
    )
    allow = predicate = matched = None
    if filter is not None:
        # every matching id, from the payload index in memory (SQL is its reference)
        matching = matching_ids(ctx, collection, filter)
        matched = int(matching.shape[0])
        total = ctx.live.indexes.stats(collection).count
        if matched <= max(ALLOW_LIST_LIMIT, ALLOW_LIST_SHARE * total):
            allow = matching
        else:
            predicate = _member_of(matching)
    if ids is not None:
        with ctx.sessions() as session:
            named = lookups.live_ids(session=session, collection=collection, external_ids=ids)
        allow = named if allow is None else np.intersect1d(allow, named)
    # items past their expiry that the sweep has not deleted yet: never found (a filter's
    # matching ids left them out already)
    expired = expired_ids(ctx, collection) if filter is None else np.empty(0, np.int64)
    if expired.size and allow is not None:
        allow = np.setdiff1d(allow, expired, assume_unique=True)
    elif expired.size:
        predicate = both(predicate, outside(expired))
    return Plan(collection, query, k, offset, min_score, params, allow, predicate, matched)


def _member_of(matching: np.ndarray) -> Predicate:
    # The post-filter for broad filters: candidates checked against the matching ids.
    # ``matching`` is sorted: a binary search per candidate, no sort of the whole set
    def predicate(ids: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(matching, ids), matching.shape[0] - 1)
        return np.asarray(matching[at] == ids) if matching.size else np.zeros(ids.shape, bool)

    return predicate


# -- retrieve, fuse, rerank, page, hydrate ---------------------------------------------------
def retrieve(ctx: Context, plan: Plan) -> list[Leg]:
    """One ranked list per retriever, each of ``plan.depth`` candidates that pass the
    filter; with a single leg, ``min_score`` bounds its own score (cosine or BM25)."""
    own_min = None if plan.fused else plan.min_score
    legs = []
    if plan.vector is not None:
        result = ctx.live.indexes.search(
            plan.collection,
            plan.vector[None, :],
            plan.depth,
            params=plan.params,
            allow=plan.allow,
            predicate=plan.predicate,
            min_score=own_min,
        )
        legs.append(Leg("vector", tuple(Candidate(i, s) for i, s in result.hits(0))))
    for keyword in plan.keywords:
        found = ctx.live.keywords.search(
            plan.collection,
            keyword.query,
            plan.depth,
            allow=plan.allow,
            predicate=plan.predicate,
        )
        hits = [Candidate(i, s) for i, s in found.pairs() if own_min is None or s >= own_min]
        legs.append(Leg(keyword.name, tuple(hits), keyword.weight))
    return legs


def fuse(plan: Plan, legs: Sequence[Leg]) -> list[Candidate]:
    """The legs' candidates as one ranked list (a single leg is returned as it is); fused
    scores lie in [0, 1], and ``min_score`` bounds them."""
    fused = fuse_legs(legs, plan.fusion)
    if plan.fused and plan.min_score is not None:
        fused = [c for c in fused if c.score >= plan.min_score]
    return fused


def rerank(ctx: Context, plan: Plan, candidates: list[Candidate]) -> list[Candidate]:
    """Reorder the first ``rerank.candidates`` by the reranker's relevance to the query
    text; items without text go after them, in their order. Identity without a reranker."""
    if plan.rerank is None:
        return candidates
    kept = [c for c in candidates if c.item_id not in plan.exclude]
    head, tail = kept[: plan.rerank.candidates], kept[plan.rerank.candidates :]
    rows = ctx.live.hits.rows(plan.collection, [c.item_id for c in head])
    texts = [(c, rows[c.item_id].text) for c in head if c.item_id in rows]
    scored = [(c, t) for c, t in texts if t]
    if not scored:
        return kept
    ranked = reranking.rerank(ctx, plan.rerank.model, plan.rerank_query, [t for _, t in scored])
    reordered = [
        Candidate(scored[r.index][0].item_id, r.score, _with_rerank(scored[r.index][0]))
        for r in ranked.results
    ]
    no_text = [c for c, t in texts if not t]
    return reordered + no_text + tail


def _with_rerank(candidate: Candidate) -> dict[str, LegScore]:
    # What explain shows of a reranked hit: its place in each leg, and the score it had
    # before the reranker (under "retrieval"), next to which it now has the reranker's.
    legs = dict(candidate.legs or {})
    legs.setdefault("retrieval", LegScore(0, candidate.score))
    return legs


def page(plan: Plan, candidates: list[Candidate]) -> list[Candidate]:
    """Leave out the items the query was built from, skip ``offset``, keep ``k``."""
    kept = [c for c in candidates if c.item_id not in plan.exclude]
    return kept[plan.offset : plan.offset + plan.k]


def hydrate(ctx: Context, plan: Plan, candidates: list[Candidate]) -> list[Hit]:
    """The candidates' rows from the hit cache (one SQL read of those it lacks; their
    vectors in another, when asked for); candidates no longer live are dropped."""
    ids = [c.item_id for c in candidates]
    rows = ctx.live.hits.rows(plan.collection, ids)
    vectors: dict[int, np.ndarray] = {}
    if plan.with_vectors and ids:
        with ctx.sessions() as session:
            vectors = repo.vectors_of(session=session, item_ids=ids, dim=plan.collection.dim)
    return [
        Hit(
            row.external_id,
            c.score,
            row.metadata,
            row.text,
            row.uri,
            row.document_id,
            row.id,
            row.sha256,
            vectors.get(c.item_id),
            c.legs if plan.explain else None,
        )
        for c in candidates
        if (row := rows.get(c.item_id)) is not None
    ]


def run(ctx: Context, plan: Plan) -> list[Hit]:
    """Every stage after planning: retrieve → fuse → rerank → diversify → page → hydrate
    (a grouped search: see :func:`run_grouped`)."""
    candidates = rerank(ctx, plan, fuse(plan, retrieve(ctx, plan)))
    return hydrate(ctx, plan, page(plan, diversify(ctx, plan, candidates)))


def diversify(ctx: Context, plan: Plan, candidates: list[Candidate]) -> list[Candidate]:
    """The list re-ranked by MMR when the query asks for it (the pool after the query's own
    items are left out); identity otherwise."""
    if plan.mmr is None:
        return candidates
    kept = [c for c in candidates if c.item_id not in plan.exclude]
    cosines = plan.vector is not None and not plan.fused and plan.rerank is None
    cosines = cosines and plan.collection.metric == "cosine"
    want = plan.offset + plan.k
    return diversity.mmr(ctx, plan.collection, kept, plan.mmr, want, cosines=cosines)


def run_grouped(ctx: Context, plan: Plan) -> list[HitGroup]:
    """retrieve → fuse → rerank → group → hydrate: the best groups, each with its hits."""
    assert plan.group_by is not None
    candidates = rerank(ctx, plan, fuse(plan, retrieve(ctx, plan)))
    kept = [c for c in candidates if c.item_id not in plan.exclude]
    groups = diversity.group(ctx, plan.collection, kept, plan.group_by)
    unique = list({c.item_id: c for _, hits in groups for c in hits}.values())
    hits = {h.item_id: h for h in hydrate(ctx, plan, unique)}
    out = [
        HitGroup(value, [hits[c.item_id] for c in found if c.item_id in hits])
        for value, found in groups
    ]
    return [g for g in out if g.hits]


# -- entry points ----------------------------------------------------------------------------
def search(ctx: Context, name: str, query: Query) -> SearchAnswer:
    """Search with the normalised weighted sum of ``query.terms``.

    Items named by ``item`` terms are left out of the results unless
    ``exclude_query_items`` is false (as Qdrant's recommend does).
    """
    planned = plan(ctx, name, query)
    groups = run_grouped(ctx, planned) if planned.group_by is not None else None
    hits = run(ctx, planned) if groups is None else [h for g in groups for h in g.hits]
    contributions, strategy = None, None
    if planned.explain:
        vector = planned.vector
        contributions = explain(list(planned.terms), vector) if vector is not None else []
        strategy = _strategy(ctx, planned)
    return SearchAnswer(hits, contributions, planned.matched, strategy, groups)


def _strategy(ctx: Context, plan: Plan) -> FilterStrategy | None:
    # How the filter was applied (see docs/operations.md, Store): None without one.
    if plan.matched is None:
        return None
    if plan.predicate is not None:
        return "post-check"  # the index's best, each checked against the matching ids
    stats = ctx.live.indexes.stats(plan.collection)
    if stats.kind == "flat" or plan.matched <= exact_below(stats.count):
        return "exact"  # the matching items scored exactly
    return "selector"  # the index walk restricted to the matching ids, widened by selectivity


def at_once(ctx: Context, name: str) -> bool:
    """Whether a search of ``name`` by a vector alone would run without waiting: the
    collection is known and its index open in this process, and no write to it is under
    way. A hint for callers that would rather block briefly than hand the search to a
    thread; a write may still begin before the search does."""
    row = ctx.live.rows.peek(name)
    return row is not None and ctx.live.indexes.ready(row)


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
