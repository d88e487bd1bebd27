"""What a search is asked and what it answers: the frozen values its stages pass on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentspace.index import SearchParams
from latentspace.index.algebra import Term, TermContribution
from latentspace.index.base import Predicate
from latentspace.index.fusion import Fusion, LegScore
from latentspace.service.diversity import GroupBy, Mmr
from latentspace.service.terms import QueryTerm
from latentspace.store.tables import CollectionRow
from latentspace.types import FilterStrategy

__all__ = [
    "Hit",
    "HitGroup",
    "KeywordLeg",
    "PathStep",
    "Plan",
    "Query",
    "RerankStage",
    "SearchAnswer",
]


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
    fusion: Fusion | None = None
    min_seq: int | None = None  # read-your-writes: served once this oplog seq is applied
    ids: Sequence[str] | None = None  # only these items may be found (a lasso on the map)
    mmr: Mmr | None = None
    group_by: GroupBy | None = None


@dataclass(frozen=True)
class KeywordLeg:
    """A keyword term made concrete: its BM25 query, its weight in fusion, its leg's name."""

    query: str
    weight: float
    name: str = "keyword"


@dataclass(frozen=True)
class RerankStage:
    """Re-score the first ``candidates`` of the list with ``model`` against ``query`` (the
    query's text when not given); the hits' scores become the reranker's relevance."""

    model: str
    candidates: int = 50
    query: str | None = None


@dataclass(frozen=True)
class Plan:
    """A query made concrete: the vector (None when every term is a keyword), the
    keyword legs, the filter's form, the window to return."""

    collection: CollectionRow
    vector: np.ndarray | None
    k: int
    offset: int = 0
    min_score: float | None = None
    params: SearchParams | None = None
    allow: np.ndarray | None = None
    predicate: Predicate | None = None
    matched: int | None = None  # live items that pass the filter (None: no filter)
    exclude: frozenset[int] = frozenset()
    terms: tuple[Term, ...] = ()
    explain: bool = False
    with_vectors: bool = False
    rerank: RerankStage | None = None
    rerank_query: str = ""
    keywords: tuple[KeywordLeg, ...] = ()
    fusion: Fusion = field(default_factory=Fusion)
    mmr: Mmr | None = None
    group_by: GroupBy | None = None

    @property
    def fused(self) -> bool:
        """Whether there is more than one leg (scores are then fused, in [0, 1])."""
        return (self.vector is not None) + len(self.keywords) > 1

    @property
    def depth(self) -> int:
        """How many candidates each leg must fetch so the page (and the reranker's window,
        and with several legs the fusion depth) can be filled."""
        window = self.rerank.candidates if self.rerank is not None else 0
        fused = self.fusion.depth if self.fused else 0
        diverse = self.mmr.candidates if self.mmr is not None else 0
        grouped = self.group_by.window if self.group_by is not None else 0
        return max(self.k + self.offset, window, fused, diverse, grouped) + len(self.exclude)


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
    legs: Mapping[str, LegScore] | None = None


@dataclass(frozen=True)
class HitGroup:
    """The hits of a grouped search that share one value of the group field."""

    value: Any
    hits: list[Hit]


@dataclass(frozen=True)
class PathStep:
    """One step of a walk: its position ``t`` in [0, 1] and the nearest unused item."""

    t: float
    hit: Hit | None


@dataclass(frozen=True)
class SearchAnswer:
    """Hits, (when asked) how each term shaped the query, how many live items pass the
    filter (None without one), (when asked) how the filter was applied, and with
    ``group_by`` the hits in their groups."""

    hits: list[Hit]
    contributions: list[TermContribution] | None
    matched: int | None = None
    strategy: FilterStrategy | None = None
    groups: list[HitGroup] | None = None  # with group_by: the hits, grouped
