"""Fusion: several retrievers' ranked lists → one, with a score in [0, 1].

    rrf             Σ 1 / (k + rank): every leg counts the same
    weighted        Σ w / (k + rank): each leg counts by its weight (reciprocal rank
                    fusion with weights)
    relative_score  Σ w · (s − min) / (max − min): each leg's scores min-max scaled
                    over its candidates (Weaviate's relativeScoreFusion)

Each fused score is divided by the best a candidate could get (first in every leg, or top
score in every leg), so it lies in [0, 1] and ``min_score`` means the same whatever the
legs. Ties are broken by item id. The defaults are those ``bench/bench_rag.py`` measured
best on real text (see bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from latentspace.errors import InvalidInput

__all__ = [
    "DEFAULT_FUSION",
    "DEFAULT_FUSION_DEPTH",
    "DEFAULT_KEYWORD_WEIGHT",
    "DEFAULT_RRF_K",
    "FUSION_METHODS",
    "Candidate",
    "Fusion",
    "FusionMethod",
    "Leg",
    "LegScore",
    "fuse",
]

FusionMethod = Literal["rrf", "weighted", "relative_score"]
FUSION_METHODS: tuple[FusionMethod, ...] = get_args(FusionMethod)

# The best of bench/bench_rag.py's grid over the tune halves of four corpora together
# (CPython's docs, Debian's man pages, the Google Cloud CLI reference, NumPy/SciPy/
# scikit-learn docstrings; real all-MiniLM-L6-v2): relative-score fusion, keyword weight 1.
# Held out it beat dense by +0.023 to +0.072 R@10 and +0.033 to +0.076 MRR@10 on every
# corpus; the earlier default (weighted RRF, 0.5, k = 2, tuned on CPython's docs alone)
# gained +0.019 R@10 on the Cloud CLI's. See bench/RESULTS.md, "RAG fusion defaults".
DEFAULT_RRF_K = 2  # for rrf and weighted, when asked for
DEFAULT_KEYWORD_WEIGHT = 1.0
DEFAULT_FUSION: FusionMethod = "relative_score"
# Candidates each leg contributes, whatever the page: pages of one query agree while
# offset + k stays within it (Qdrant's prefetch limit, Weaviate's hybrid limit).
DEFAULT_FUSION_DEPTH = 100


@dataclass(frozen=True)
class LegScore:
    """A candidate's place in one leg: 1-based rank and the leg's own score."""

    rank: int
    score: float


@dataclass(frozen=True)
class Candidate:
    """An item id with its score (higher is better) in a ranked list; after fusion, its
    rank and score in each leg that found it."""

    item_id: int
    score: float
    legs: Mapping[str, LegScore] | None = None


@dataclass(frozen=True)
class Leg:
    """One retriever's ranked candidates, and how much it counts in fusion."""

    name: str
    candidates: tuple[Candidate, ...]
    weight: float = 1.0


@dataclass(frozen=True)
class Fusion:
    """How legs are fused: the method, RRF's rank constant ``k``, and how many candidates
    each leg contributes (at least; more when offset + k or a reranker needs them)."""

    method: FusionMethod = DEFAULT_FUSION
    k: int = DEFAULT_RRF_K
    depth: int = DEFAULT_FUSION_DEPTH

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise InvalidInput(
                f"unknown fusion method {self.method!r}; one of {', '.join(FUSION_METHODS)}"
            )
        if not 1 <= self.k <= 10_000:
            raise InvalidInput(f"fusion k must be between 1 and 10000, got {self.k}")
        if not 1 <= self.depth <= 10_000:
            raise InvalidInput(f"fusion depth must be between 1 and 10000, got {self.depth}")


def fuse(legs: Sequence[Leg], fusion: Fusion) -> list[Candidate]:
    """The legs' candidates as one ranked list, best first.

    A single leg is returned as it is (its own scores: cosine, or BM25).
    """
    if len(legs) == 1:
        return list(legs[0].candidates)
    places: dict[int, dict[str, LegScore]] = {}
    for leg in legs:
        for rank, c in enumerate(leg.candidates, start=1):
            places.setdefault(c.item_id, {})[leg.name] = LegScore(rank, c.score)
    if not places:
        return []
    ids = np.fromiter(places, dtype=np.int64, count=len(places))
    total = np.zeros(ids.shape[0])
    weights = [1.0 if fusion.method == "rrf" else leg.weight for leg in legs]
    for leg, weight in zip(legs, weights, strict=True):
        total += weight * _leg_values(leg, ids, places, fusion)
    best = sum(weights) / (fusion.k + 1) if fusion.method != "relative_score" else sum(weights)
    scores = total / best if best > 0 else total
    order = np.lexsort((ids, -scores))
    return [Candidate(int(ids[i]), float(scores[i]), places[int(ids[i])]) for i in order.tolist()]


def _leg_values(
    leg: Leg, ids: np.ndarray, places: dict[int, dict[str, LegScore]], fusion: Fusion
) -> np.ndarray:
    # Each candidate's contribution from this leg before weighting (0 where it is absent).
    values = np.zeros(ids.shape[0])
    if not leg.candidates:
        return values
    if fusion.method == "relative_score":
        scores = np.array([c.score for c in leg.candidates])
        low, high = float(scores.min()), float(scores.max())
        span = high - low
    for row, item_id in enumerate(ids.tolist()):
        place = places[item_id].get(leg.name)
        if place is None:
            continue
        if fusion.method == "relative_score":
            values[row] = (place.score - low) / span if span > 0 else 1.0
        else:
            values[row] = 1.0 / (fusion.k + place.rank)
    return values
