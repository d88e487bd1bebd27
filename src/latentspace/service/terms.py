"""Query terms → vectors: texts and images embedded, items and directions read from SQL.

The plan stage of a search, and what directions, paths and duplicate checks build on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from latentspace import limits
from latentspace.errors import InvalidInput
from latentspace.index.algebra import Term
from latentspace.index.fusion import DEFAULT_KEYWORD_WEIGHT
from latentspace.service import adapters, collections
from latentspace.service.context import Context
from latentspace.service.encoders import decode_checked, embed_texts, require_encoder
from latentspace.store import directions as directions_repo
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow
from latentspace.types import TERM_KINDS, TermKind
from latentspace.vectors import as_vector

__all__ = ["QueryTerm", "default_weight", "resolve_terms"]


def default_weight(keyword: str | None) -> float:
    """A term's weight when the caller gives none: 1, and for a keyword term the weight of
    its leg in fusion that ``bench/bench_rag.py`` measured best."""
    return DEFAULT_KEYWORD_WEIGHT if keyword is not None else 1.0


@dataclass(frozen=True)
class QueryTerm:
    """One term of a query: exactly one of its sources, and a signed weight.

    A ``keyword`` term is not a vector: it is a BM25 leg of the search, fused with the
    vector leg, and its weight is the leg's weight in fusion (see ``default_weight``).
    """

    text: str | None = None
    image: bytes | None = None
    item: str | None = None
    vector: Sequence[float] | np.ndarray | None = None
    direction: str | None = None
    keyword: str | None = None
    weight: float = 1.0
    # the model whose space a text, image or vector term is in, when not the collection's:
    # mapped through the collection's adapter from it (see ``service.adapters``)
    model: str | None = None

    @property
    def kind(self) -> TermKind:
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
        if kind in ("image", "vector"):
            return kind
        return f"{kind}:{getattr(self, kind)}"


def resolve_terms(
    ctx: Context, collection: CollectionRow, terms: Sequence[QueryTerm]
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
    if any(t.kind == "keyword" for t in terms):
        raise InvalidInput("a keyword term can only be part of a search query")
    limit = ctx.settings.limits
    limits.check_batch(limit, terms, "query terms")

    def name(i: int, kind: str) -> str:  # what an error calls the term: plain for one
        return f"term {i} {kind}" if len(terms) > 1 else f"the query {kind}"

    kinds = [t.kind for t in terms]
    vectors = _foreign(ctx, collection, terms, name)
    own = [
        t.text is not None or t.image is not None for i, t in enumerate(terms) if i not in vectors
    ]
    encoder = collections.encoder_of(ctx, collection) if any(own) else None
    texts = [(i, t.text) for i, t in enumerate(terms) if t.text is not None and i not in vectors]
    if texts:
        text_encoder = require_encoder(encoder, collection, "text")
        embedded = embed_texts(ctx.live.encoders, text_encoder, [t for _, t in texts], limit)
        vectors.update({i: embedded[row] for row, (i, _) in enumerate(texts)})
    images = [(i, t.image) for i, t in enumerate(terms) if t.image is not None and i not in vectors]
    if images:
        image_encoder = require_encoder(encoder, collection, "image")
        decoded = [decode_checked(data, limit, name=name(i, "image")) for i, data in images]
        embedded = ctx.live.encoders.encode_images(image_encoder, decoded)
        vectors.update({i: embedded[row] for row, (i, _) in enumerate(images)})
    for i, term in enumerate(terms):
        for named in (term.item, term.direction):
            if named is not None:
                limits.check_string(named, name=name(i, term.kind))
    used: list[int] = []
    if {"item", "direction", "vector"} & set(kinds):
        with ctx.sessions() as session:
            for i, term in enumerate(terms):
                if term.item is not None:
                    row = repo.get_item(
                        session=session, collection=collection, external_id=term.item
                    )
                    stored = repo.vectors_of(session=session, item_ids=[row.id], dim=collection.dim)
                    vectors[i] = stored[row.id]
                    used.append(row.id)
                elif term.direction is not None:
                    d = directions_repo.get_direction(
                        session=session, collection=collection, name=term.direction
                    )
                    vectors[i] = np.frombuffer(d.vector, dtype=np.float32, count=collection.dim)
                elif term.vector is not None and i not in vectors:
                    vectors[i] = as_vector(term.vector, dim=collection.dim, name=name(i, "vector"))
    return [Term(vectors[i], float(t.weight), t.label()) for i, t in enumerate(terms)], used


def _foreign(
    ctx: Context,
    collection: CollectionRow,
    terms: Sequence[QueryTerm],
    name: Callable[[int, str], str],
) -> dict[int, np.ndarray]:
    # The vectors of the terms that name another model's space, carried into the
    # collection's through its adapter (terms that name the collection's own model are
    # left to the usual path).
    out: dict[int, np.ndarray] = {}
    for i, term in enumerate(terms):
        if term.model is None:
            continue
        if term.kind not in ("text", "image", "vector"):
            raise InvalidInput(
                f"{name(i, term.kind)}: model applies to text, image and vector terms only"
            )
        limits.check_string(term.model, name=f"{name(i, term.kind)} model")
        mapped = adapters.map_term(
            ctx,
            collection,
            term.model,
            text=term.text,
            image=term.image,
            vector=term.vector,
            name=name(i, term.kind),
        )
        if mapped is not None:
            out[i] = mapped
    return out
