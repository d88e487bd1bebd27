"""Search: terms and composite queries, hits, explanations, directions, paths."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from latentspace.api.schemas.common import DEFAULT_INCLUDE, NAME_PATTERN, Include, StrictModel
from latentspace.index.fusion import DEFAULT_FUSION, DEFAULT_FUSION_DEPTH, DEFAULT_RRF_K
from latentspace.types import FilterStrategy

_B64_VECTOR_CHARS = 4 * (65_536 * 4 + 2) // 3  # base64 of the most float32 a list may hold

__all__ = [
    "CompositeQuery",
    "ConsistencyIn",
    "DirectionCreate",
    "DirectionList",
    "DirectionPublic",
    "ExplainTerm",
    "FusionIn",
    "GroupByIn",
    "HitGroupPublic",
    "LegPlace",
    "MmrIn",
    "PathRequest",
    "PathResult",
    "PathStepPublic",
    "RerankIn",
    "SearchHit",
    "SearchParamsIn",
    "SearchRequest",
    "SearchResult",
    "TermIn",
]


class TermIn(StrictModel):
    """One query term: exactly one source, with a signed weight.

    ``keyword`` is a BM25 leg fused with the vector leg (search only); its weight is the
    leg's weight in fusion, default 1 (measured, see bench/RESULTS.md). Every other
    term's weight defaults to 1."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "a green triangle"},
                {"item": "img-42", "weight": 1.0},
                {"keyword": "sort stable key"},
            ]
        },
    )

    text: str | None = None
    image: str | None = Field(default=None, description="Base64 image.")
    item: str | None = Field(default=None, description="Id of a stored item.")
    vector: (
        Annotated[list[float], Field(min_length=1, max_length=65_536)]
        | Annotated[str, Field(min_length=1, max_length=_B64_VECTOR_CHARS)]
        | None
    ) = Field(
        default=None,
        description="The vector's numbers, or base64 of its little-endian float32 bytes (as "
        "`POST …/vectors` takes them): 4 bytes a value, no number to print or parse.",
    )
    direction: str | None = Field(default=None, description="Name of a stored direction.")
    keyword: str | None = Field(
        default=None, description="Words for the BM25 leg (plain text, no query syntax)."
    )
    weight: float | None = Field(default=None, ge=-1e6, le=1e6, allow_inf_nan=False)
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="The model (spec or fingerprint) whose space a text, image or vector "
        "term is in, when it is not the collection's: the term is embedded by that model and "
        "mapped through the collection's adapter from it (`GET …/adapters`); without such an "
        "adapter the query is refused (409 model-mismatch).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TermIn:
        kinds = ("text", "image", "item", "vector", "direction", "keyword")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a term needs exactly one of {', '.join(kinds)} (got {given})")
        return self


class CompositeQuery(StrictModel):
    """A weighted sum of terms."""

    terms: list[TermIn] = Field(min_length=1)


def _query_kind(value: Any) -> str:
    # Route the error to the model the caller meant: {terms: [...]} is a composite query.
    if isinstance(value, dict):
        return "composite" if "terms" in value else "single"
    return "composite" if isinstance(value, CompositeQuery) else "single"


class SearchParamsIn(StrictModel):
    """Per-query index knobs (ignored by kinds they do not apply to)."""

    ef_search: int | None = Field(default=None, ge=1, le=4096)
    nprobe: int | None = Field(default=None, ge=1, le=65_536)
    rescore: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Quantized indexes: candidates fetched per wanted hit from the codes and "
        "rescored against the float32 vectors (default: the collection's `rescore`).",
    )


class RerankIn(StrictModel):
    """Re-score the first ``candidates`` hits with ``model`` (a cross-encoder of
    ``LATENTSPACE_RERANK_MODELS`` or an embedding model ``/v1/embeddings`` serves) against
    ``query`` (default: the query's one text term); scores become its relevance in [0, 1]."""

    model: str = Field(min_length=1, max_length=512)
    candidates: int = Field(default=50, ge=1)
    query: str | None = Field(default=None, min_length=1)


class FusionIn(StrictModel):
    """How the vector and keyword legs are fused (used when a query has several legs)."""

    method: Literal["rrf", "weighted", "relative_score"] = Field(
        default=DEFAULT_FUSION,
        description="rrf: Σ 1/(k+rank); weighted: Σ w/(k+rank), w = the keyword term's "
        "weight (the vector leg's is 1); relative_score: Σ w·min-max(score). Scores are "
        "scaled to [0, 1].",
    )
    k: int = Field(default=DEFAULT_RRF_K, ge=1, le=10_000, description="RRF's rank constant.")
    depth: int = Field(
        default=DEFAULT_FUSION_DEPTH,
        ge=1,
        le=10_000,
        description="Candidates each leg contributes (more when offset + k needs them); "
        "pages of one query agree while offset + k stays within it.",
    )


class MmrIn(StrictModel):
    """Maximal marginal relevance: the page is chosen from the first ``candidates`` hits,
    each next hit the one with the best ``lambda·relevance − (1 − lambda)·(max cosine to the
    hits chosen before it)``; 1 is plain relevance, 0 variety alone."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    lambda_: float = Field(
        default=0.5, ge=0, le=1, alias="lambda", allow_inf_nan=False, strict=True
    )
    candidates: int = Field(
        default=50,
        ge=1,
        le=1000,
        strict=True,
        description="The pool the page is chosen from (≥ k + offset).",
    )


class GroupByIn(StrictModel):
    """Group the hits by a metadata field (``document_id``: the chunks of one document):
    the best ``groups`` groups, ordered by their best hit, each with its best ``size``
    hits. Items without the field are left out; a list value puts an item in each of its
    elements' groups."""

    field: str = Field(
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}(\.[A-Za-z0-9_][A-Za-z0-9_\-]{0,63})*$",
    )
    size: int = Field(default=3, ge=1, le=100, strict=True, description="Hits per group.")
    groups: int | None = Field(
        default=None, ge=1, le=1000, strict=True, description="Groups; default: k."
    )


class ConsistencyIn(StrictModel):
    """Read-your-writes across workers and hosts."""

    min_seq: int = Field(
        ge=0,
        le=2**63 - 1,  # an oplog sequence is a BIGINT
        description="Serve the search only once this process has applied the collection's "
        "oplog up to this sequence (the `seq` a write answered); waits up to "
        "LATENTSPACE_CLUSTER__CONSISTENCY_TIMEOUT, then 503.",
    )


class SearchRequest(StrictModel):
    """A search: one term or ``{terms: [...]}``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"query": {"text": "a green triangle"}, "k": 5},
                {
                    "query": {
                        "terms": [
                            {"item": "img-42"},
                            {"text": "red", "weight": -1},
                            {"text": "blue", "weight": 1},
                        ]
                    },
                    "k": 10,
                    "filter": {"shape": "triangle"},
                    "explain": True,
                },
            ]
        },
    )

    query: Annotated[
        Annotated[TermIn, Tag("single")] | Annotated[CompositeQuery, Tag("composite")],
        Discriminator(_query_kind),
    ]
    k: int = Field(default=10, ge=1)
    filter: dict[str, Any] | None = None
    min_score: float | None = Field(default=None, allow_inf_nan=False)
    offset: int = Field(default=0, ge=0, le=100_000)
    include: list[Include] = Field(default_factory=lambda: list(DEFAULT_INCLUDE))
    explain: bool = False
    params: SearchParamsIn | None = None
    exclude_query_items: bool = Field(
        default=True, description="Leave the items named by `item` terms out of the results."
    )
    rerank: RerankIn | None = None
    fusion: FusionIn | None = None
    consistency: ConsistencyIn | None = None
    mmr: MmrIn | None = Field(default=None, description="Re-rank the head for variety.")
    group_by: GroupByIn | None = Field(
        default=None, description="Hits grouped by a field (the answer's `groups`)."
    )
    ids: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None,
        max_length=50_000,
        description="Only these items (by id) may be found, ANDed with `filter`; unknown ids "
        "are ignored (the page's lasso on the map sends them).",
    )


class LegPlace(BaseModel):
    """A hit's 1-based rank and own score in one leg (``explain``)."""

    rank: int
    score: float


class SearchHit(BaseModel):
    """One result; the optional fields follow ``include``."""

    id: str
    score: float
    metadata: dict[str, Any] | None = None
    text: str | None = None
    uri: str | None = None
    document_id: str | None = None
    sha256: str | None = None
    vector: list[float] | None = None
    legs: dict[str, LegPlace] | None = Field(
        default=None,
        description="With `explain` and several legs or a reranker: the hit's rank and "
        "score in each leg that found it (`retrieval`: its score before the reranker).",
    )


class ExplainTerm(BaseModel):
    """A term's weight and the cosine between its vector and the final query."""

    term: str
    weight: float
    cosine: float


class HitGroupPublic(BaseModel):
    """The hits that share one value of the ``group_by`` field, best first."""

    value: Any
    hits: list[SearchHit]


class SearchResult(BaseModel):
    """Results, best first."""

    results: list[SearchHit]
    groups: list[HitGroupPublic] | None = Field(
        default=None,
        description="With `group_by`: the groups, best first (`results` holds their hits in "
        "the same order).",
    )
    explain: list[ExplainTerm] | None = None
    matched: int | None = Field(
        default=None,
        description="With a filter: how many live items pass it (the hits are the best of "
        "these; fewer than k come back only when fewer than k match).",
    )
    strategy: FilterStrategy | None = Field(
        default=None,
        description="With a filter and explain: how it was applied (exact: the matching "
        "items scored exactly; selector: the index walk restricted to them; post-check: the "
        "index's best, each checked).",
    )
    took_ms: float


class DirectionCreate(StrictModel):
    """A named direction: mean(positive) − mean(negative)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "red-to-blue",
                    "positive": [{"text": "blue"}],
                    "negative": [{"text": "red"}],
                }
            ]
        },
    )

    name: str = Field(pattern=NAME_PATTERN)
    positive: list[TermIn] = Field(min_length=1)
    negative: list[TermIn] = Field(min_length=1)


class DirectionPublic(BaseModel):
    """A stored direction."""

    name: str
    norm: float
    definition: dict[str, Any]
    created_at: str


class DirectionList(BaseModel):
    """A collection's directions."""

    directions: list[DirectionPublic]


class PathRequest(StrictModel):
    """A slerp walk from one term to another."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [{"from": {"item": "a"}, "to": {"item": "b"}, "steps": 6}]},
    )

    from_: TermIn = Field(alias="from")
    to: TermIn
    steps: int = Field(default=8, ge=2)
    filter: dict[str, Any] | None = None
    include: list[Include] = Field(default_factory=lambda: list(DEFAULT_INCLUDE))


class PathStepPublic(BaseModel):
    """One step: position ``t`` in [0, 1] and the nearest item not used before."""

    t: float
    item: SearchHit | None


class PathResult(BaseModel):
    """The walk."""

    steps: list[PathStepPublic]
