"""Conversions shared by the routes: base64 payloads, terms, hits, item rows."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from latentspace.api.errors import problem_for
from latentspace.api.schemas import ItemPublic, Problem, SearchHit, TermIn
from latentspace.errors import InvalidInput, LatentspaceError
from latentspace.service import Hit, LatentSpace, QueryTerm
from latentspace.store.tables import ItemRow

__all__ = [
    "decode_base64",
    "form_json",
    "hits_public",
    "item_public",
    "problem_of",
    "query_term",
]


def decode_base64(data: str, *, name: str = "image") -> bytes:
    """Bytes of a base64 string (a ``data:...;base64,`` prefix is allowed).

    Raises:
        InvalidInput: not valid base64.
    """
    if data.startswith("data:"):
        _, _, data = data.partition(",")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidInput(f"{name} is not valid base64: {e}") from e


def form_json(raw: str, *, field: str) -> Any:
    """The value of a multipart form field that carries JSON.

    Raises:
        InvalidInput: the field is not JSON, naming the field.
    """
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{field} is not JSON: {e}") from e


def query_term(term: TermIn, *, name: str = "term") -> QueryTerm:
    """The service's term for an API term."""
    return QueryTerm(
        text=term.text,
        image=decode_base64(term.image, name=f"{name} image") if term.image is not None else None,
        item=term.item,
        vector=term.vector,
        direction=term.direction,
        weight=term.weight,
    )


def hits_public(
    space: LatentSpace, collection: str, hits: Sequence[Hit], include: Sequence[str]
) -> list[SearchHit]:
    """Hits shaped by ``include``; vectors are fetched in one query when asked for."""
    wanted = set(include)
    vectors: dict[int, np.ndarray] = {}
    if "vector" in wanted and hits:
        vectors = space.vectors(collection, [h.item_id for h in hits])
    out = []
    for hit in hits:
        vector = vectors.get(hit.item_id)
        out.append(
            SearchHit(
                id=hit.id,
                score=hit.score,
                metadata=hit.metadata if "metadata" in wanted else None,
                text=hit.text if "text" in wanted else None,
                uri=hit.uri if "uri" in wanted else None,
                document_id=hit.document_id if "document_id" in wanted else None,
                sha256=hit.sha256 if "sha256" in wanted else None,
                vector=vector.tolist() if vector is not None else None,
            )
        )
    return out


def item_public(row: ItemRow, vector: np.ndarray | None = None) -> ItemPublic:
    """A stored item as the API shows it."""
    return ItemPublic(
        id=row.external_id,
        kind=row.kind,
        sha256=row.sha256,
        text=row.text,
        uri=row.uri,
        metadata=row.metadata_,
        document_id=row.document_id,
        created_at=row.created_at.isoformat(),
        updated_at=row.updated_at.isoformat(),
        vector=vector.tolist() if vector is not None else None,
    )


def problem_of(error: LatentspaceError, instance: str | None = None) -> Problem:
    """A per-item problem (inside a batch answer)."""
    status, kind = problem_for(error)
    return Problem(
        type=f"/problems/{kind}",
        title=kind.replace("-", " ").capitalize(),
        status=status,
        detail=str(error),
        instance=instance,
    )
