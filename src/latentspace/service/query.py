"""Composite queries: terms → vectors → one weighted query; directions; the slerp walk."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentspace.errors import InvalidInput, LimitExceeded
from latentspace.index import SearchParams
from latentspace.index.algebra import (
    Term,
    TermContribution,
    as_vector,
    combine,
    direction,
    explain,
    slerp_path,
)
from latentspace.service.embedding import decode_checked, embed_texts, require_encoder
from latentspace.service.space import Hit, LatentSpace
from latentspace.store import directions as directions_repo
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow

__all__ = [
    "DirectionInfo",
    "PathStep",
    "QueryTerm",
    "SearchAnswer",
    "create_direction",
    "delete_direction",
    "list_directions",
    "resolve_terms",
    "search",
    "walk_path",
]

TERM_KINDS = ("text", "image", "item", "vector", "direction")


@dataclass(frozen=True)
class QueryTerm:
    """One term of a query: exactly one of its five sources, and a signed weight."""

    text: str | None = None
    image: bytes | None = None
    item: str | None = None
    vector: Sequence[float] | None = None
    direction: str | None = None
    weight: float = 1.0

    @property
    def kind(self) -> str:
        """Which source the term uses.

        Raises:
            InvalidInput: none or several sources are set.
        """
        given = [k for k in TERM_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise InvalidInput(
                f"a query term needs exactly one of {', '.join(TERM_KINDS)}; got {given or 'none'}"
            )
        return given[0]

    def label(self) -> str:
        """How the term is named in explanations."""
        kind = self.kind
        if kind == "image":
            return "image"
        if kind == "vector":
            return "vector"
        return f"{kind}:{getattr(self, kind)}"


@dataclass(frozen=True)
class SearchAnswer:
    """Hits, and (when asked) how each term shaped the query."""

    hits: list[Hit]
    contributions: list[TermContribution] | None


@dataclass(frozen=True)
class PathStep:
    """One step of a walk: its position ``t`` in [0, 1] and the nearest unused item."""

    t: float
    hit: Hit | None


@dataclass(frozen=True)
class DirectionInfo:
    """A stored direction: its name, length and how it was defined."""

    name: str
    norm: float
    definition: dict[str, Any]
    created_at: str


def resolve_terms(
    space: LatentSpace, collection: CollectionRow, terms: Sequence[QueryTerm]
) -> tuple[list[Term], list[int]]:
    """The algebra terms for ``terms``, and the item ids that the query used.

    Texts are embedded together in one call (and come from the text cache when repeated).

    Raises:
        InvalidInput: a malformed term, a bad image or vector, over-limit text.
        NotFound: an unknown item or direction.
        UnsupportedModality: the collection's model cannot embed the term's modality.
    """
    if not terms:
        raise InvalidInput("a query needs at least one term")
    limits = space.settings.limits
    if len(terms) > limits.max_batch:
        raise LimitExceeded(f"{len(terms)} query terms, over the limit of {limits.max_batch}")
    kinds = [t.kind for t in terms]
    encoder = space.encoder_for(collection) if {"text", "image"} & set(kinds) else None
    vectors: dict[int, np.ndarray] = {}
    texts = [(i, t.text) for i, t in enumerate(terms) if t.text is not None]
    if texts:
        text_encoder = require_encoder(encoder, collection, "text")
        embedded = embed_texts(space.encoders, text_encoder, [t for _, t in texts], limits)
        vectors.update({i: embedded[row] for row, (i, _) in enumerate(texts)})
    images = [(i, t.image) for i, t in enumerate(terms) if t.image is not None]
    if images:
        image_encoder = require_encoder(encoder, collection, "image")
        decoded = [decode_checked(data, limits, name=f"term {i} image") for i, data in images]
        embedded = space.encoders.encode_images(image_encoder, decoded)
        vectors.update({i: embedded[row] for row, (i, _) in enumerate(images)})
    used: list[int] = []
    if not {"item", "direction", "vector"} & set(kinds):
        return [Term(vectors[i], float(t.weight), t.label()) for i, t in enumerate(terms)], used
    with space.sessions() as session:
        for i, term in enumerate(terms):
            if term.item is not None:
                row = repo.get_item(session=session, collection=collection, external_id=term.item)
                stored = repo.vectors_of(session=session, item_ids=[row.id], dim=collection.dim)
                vectors[i] = stored[row.id]
                used.append(row.id)
            elif term.direction is not None:
                d = directions_repo.get_direction(
                    session=session, collection=collection, name=term.direction
                )
                vectors[i] = np.frombuffer(d.vector, dtype=np.float32, count=collection.dim)
            elif term.vector is not None:
                vectors[i] = as_vector(term.vector, dim=collection.dim, name=f"term {i} vector")
    return [Term(vectors[i], float(t.weight), t.label()) for i, t in enumerate(terms)], used


def search(
    space: LatentSpace,
    name: str,
    terms: Sequence[QueryTerm],
    *,
    k: int = 10,
    filter: dict[str, Any] | None = None,
    min_score: float | None = None,
    offset: int = 0,
    params: SearchParams | None = None,
    with_explain: bool = False,
    exclude_query_items: bool = True,
) -> SearchAnswer:
    """Search with the normalised weighted sum of ``terms``.

    Items named by ``item`` terms are left out of the results unless
    ``exclude_query_items`` is false (as Qdrant's recommend does).
    """
    _check_k(space, k)
    collection = space.collection(name)
    algebra_terms, used = resolve_terms(space, collection, terms)
    query = combine(algebra_terms, dim=collection.dim)
    hits = space.search_vector(
        name,
        query,
        k,
        filter=filter,
        min_score=min_score,
        offset=offset,
        params=params,
        exclude=used if exclude_query_items else (),
    )
    contributions = explain(algebra_terms, query) if with_explain else None
    return SearchAnswer(hits, contributions)


def walk_path(
    space: LatentSpace,
    name: str,
    start: QueryTerm,
    end: QueryTerm,
    *,
    steps: int,
    filter: dict[str, Any] | None = None,
) -> list[PathStep]:
    """Slerp from ``start`` to ``end`` in ``steps`` and take the nearest unused item at each.

    No item appears twice, so a walk between two stored items starts at the first and, when
    the walk has steps to spare, ends at the second.
    """
    limit = space.settings.limits.max_path_steps
    if not 2 <= steps <= limit:
        raise LimitExceeded(f"steps must be between 2 and {limit}, got {steps}")
    collection = space.collection(name)
    (a, b), _ = resolve_terms(space, collection, [start, end])
    points = slerp_path(a.vector, b.vector, steps)
    seen: set[int] = set()
    out = []
    for t, point in zip(np.linspace(0.0, 1.0, steps).tolist(), points, strict=True):
        # k = used + 1 always leaves one unused item, unless the collection runs out.
        hits = space.search_vector(name, point, len(seen) + 1, filter=filter)
        hit = next((h for h in hits if h.item_id not in seen), None)
        if hit is not None:
            seen.add(hit.item_id)
        out.append(PathStep(float(t), hit))
    return out


def create_direction(
    space: LatentSpace,
    name: str,
    direction_name: str,
    positive: Sequence[QueryTerm],
    negative: Sequence[QueryTerm],
) -> DirectionInfo:
    """Store ``mean(positive) − mean(negative)`` under ``direction_name`` (replacing it)."""
    if not positive or not negative:
        raise InvalidInput("a direction needs at least one positive and one negative term")
    collection = space.collection(name)
    pos, _ = resolve_terms(space, collection, positive)
    neg, _ = resolve_terms(space, collection, negative)
    vector = direction([t.weight * t.vector for t in pos], [t.weight * t.vector for t in neg])
    definition = {"positive": [t.label for t in pos], "negative": [t.label for t in neg]}
    with space.sessions.begin() as session:
        row = directions_repo.put_direction(
            session=session,
            collection=collection,
            name=direction_name,
            vector=vector,
            definition=definition,
        )
        return _direction_info(row.name, row.vector, row.definition, row.created_at.isoformat())


def list_directions(space: LatentSpace, name: str) -> list[DirectionInfo]:
    """The collection's stored directions."""
    collection = space.collection(name)
    with space.sessions() as session:
        rows = directions_repo.list_directions(session=session, collection=collection)
        return [
            _direction_info(r.name, r.vector, r.definition, r.created_at.isoformat()) for r in rows
        ]


def delete_direction(space: LatentSpace, name: str, direction_name: str) -> None:
    """Remove a stored direction (raises NotFound)."""
    collection = space.collection(name)
    with space.sessions.begin() as session:
        directions_repo.delete_direction(
            session=session, collection=collection, name=direction_name
        )


def _direction_info(
    name: str, blob: bytes, definition: dict[str, Any], created_at: str
) -> DirectionInfo:
    norm = float(np.linalg.norm(np.frombuffer(blob, dtype=np.float32)))
    return DirectionInfo(name, norm, dict(definition), created_at)


def _check_k(space: LatentSpace, k: int) -> None:
    limit = space.settings.limits.max_k
    if not 1 <= k <= limit:
        raise LimitExceeded(f"k must be between 1 and {limit}, got {k}")
