"""Adapters stored with a collection: list them, and carry a query term from another
model's space into the collection's through one.

Vectors of different models never meet unmapped: a term that names another ``model`` is
refused (409 model-mismatch) unless the collection holds an adapter from that model's
fingerprint into its own (a model migration fits one, see ``service.migrate``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from latentspace.embedder.registry import canonical_spec
from latentspace.errors import InvalidInput, ModelMismatch, NotFound
from latentspace.index.adapter import Adapter, AdapterKind
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.service.encoders import decode_checked, embed_texts, require_encoder
from latentspace.store import migrate as migrate_repo
from latentspace.store.tables import AdapterRow, CollectionRow, as_utc
from latentspace.vectors import as_vector

__all__ = ["AdapterInfo", "StoredAdapter", "list_all", "load", "map_term"]

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class AdapterInfo:
    """An adapter as ``GET …/adapters`` shows it (``current``: into the collection's
    present space, so usable by queries)."""

    source_model: str | None
    source_fingerprint: str
    target_fingerprint: str
    kind: str
    dim_in: int
    dim_out: int
    recall_at_10: float | None
    fitted_on: int
    created_at: str
    current: bool


@dataclass(frozen=True)
class StoredAdapter:
    """An adapter read from SQL: the map and where it maps from."""

    adapter: Adapter
    source_model: str | None
    source_fingerprint: str


def _of(row: AdapterRow) -> StoredAdapter:
    matrix = np.frombuffer(row.matrix, dtype=np.float32).reshape(row.dim_in, row.dim_out)
    bias = np.frombuffer(row.bias, dtype=np.float32, count=row.dim_out)
    kind: AdapterKind = "affine" if row.kind == "affine" else "procrustes"
    return StoredAdapter(Adapter(kind, matrix, bias), row.source_model, row.source_fingerprint)


def list_all(ctx: Context, name: str) -> list[AdapterInfo]:
    """The collection's adapters, newest first."""
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        rows = migrate_repo.adapters_of(session=session, collection=collection)
        return [
            AdapterInfo(
                r.source_model,
                r.source_fingerprint,
                r.target_fingerprint,
                r.kind,
                r.dim_in,
                r.dim_out,
                r.recall_at_10,
                r.fitted_on,
                as_utc(r.created_at).isoformat(),
                r.target_fingerprint == collection.fingerprint,
            )
            for r in rows
        ]


def _source(model: str) -> str:
    # A fingerprint as given; a spec in the form collections store it.
    return model if _FINGERPRINT.match(model) else canonical_spec(model)


def load(ctx: Context, collection: CollectionRow, model: str) -> StoredAdapter | None:
    """The adapter that carries ``model``'s vectors into the collection's space; None when
    ``model`` (a spec or fingerprint) is the collection's own.

    Raises:
        ModelMismatch: the collection has no adapter from ``model``.
    """
    source = _source(model)
    if source in (collection.model, collection.fingerprint):
        return None
    try:
        with ctx.sessions() as session:
            return _of(
                migrate_repo.adapter_between(session=session, collection=collection, source=source)
            )
    except NotFound as e:
        raise ModelMismatch(
            f"collection {collection.name!r} is in the space of {collection.model!r}; vectors "
            f"of {model!r} are not comparable with it, and it holds no adapter from that model "
            "(a migration with an adapter fits one: POST …/migrate)"
        ) from e


def map_term(
    ctx: Context,
    collection: CollectionRow,
    model: str,
    *,
    text: str | None = None,
    image: bytes | None = None,
    vector: object = None,
    name: str = "the query term",
) -> np.ndarray | None:
    """A text, image or raw vector of ``model``'s space as a vector of the collection's
    space (through its adapter); None when ``model`` is the collection's own (the caller
    embeds it as usual).

    Raises:
        ModelMismatch: no adapter from ``model``.
        InvalidInput: a bad vector, text or image (as for any term).
    """
    stored = load(ctx, collection, model)
    if stored is None:
        return None
    adapter = stored.adapter
    if vector is not None:
        source = as_vector(vector, dim=adapter.dim_in, name=f"{name} vector")
    else:
        if stored.source_model is None:
            raise InvalidInput(
                f"the adapter from {model!r} knows no model to embed {name} with; send a vector"
            )
        encoder = ctx.live.encoders.checked(stored.source_model, stored.source_fingerprint)
        limit = ctx.settings.limits
        if text is not None:
            source = embed_texts(
                ctx.live.encoders, require_encoder(encoder, collection, "text"), [text], limit
            )[0]
        elif image is not None:
            decoded = decode_checked(image, limit, name=f"{name} image")
            image_encoder = require_encoder(encoder, collection, "image")
            source = ctx.live.encoders.encode_images(image_encoder, [decoded])[0]
        else:
            raise InvalidInput(f"{name}: model applies to text, image and vector terms only")
    mapped: np.ndarray = adapter.apply(source)[0]
    return mapped
