"""Collections: create, look up, inspect, delete; save and rebuild their indexes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from latentspace.embedder import Encoder
from latentspace.embedder.registry import canonical_spec
from latentspace.errors import InvalidInput, Unavailable
from latentspace.keyword import Analysis
from latentspace.service.context import Context
from latentspace.service.indexes import OpenReport
from latentspace.service.keywords import analysis_of
from latentspace.store import oplog
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow
from latentspace.types import IndexChoice, Metric, as_index_choice, as_metric

__all__ = [
    "CollectionStats",
    "checked_keyword",
    "create",
    "delete",
    "encoder_of",
    "forget",
    "get",
    "index_sizes",
    "list_all",
    "list_stats",
    "raw_vectors_fingerprint",
    "rebuild",
    "remodelled",
    "save",
    "stats",
]


def raw_vectors_fingerprint(dim: int) -> str:
    """The fingerprint of a bring-your-own-vectors collection of ``dim``."""
    return hashlib.sha256(f"latentspace:raw-vectors:{dim}".encode()).hexdigest()


@dataclass(frozen=True)
class CollectionStats:
    """What ``GET /v1/collections/{name}`` reports."""

    name: str
    model: str | None
    dim: int
    metric: str
    fingerprint: str
    count: int
    index_requested: str
    index_kind: str
    index_params: dict[str, Any]
    recall_at_10: float | None
    created_at: str
    unavailable: str | None = None
    keyword: dict[str, Any] = field(default_factory=dict)
    exact_limit: int | None = None


def get(ctx: Context, name: str) -> CollectionRow:
    """The collection row (cached: a row changes only when a migration moves the collection
    to another model, and then every process drops it, see :func:`remodelled`).

    Raises:
        NotFound: no such collection.
    """
    row = ctx.collections.get(name)
    if row is None:
        with ctx.sessions() as session:
            row = repo.get_collection(session=session, name=name)
        ctx.collections[name] = row
    return row


def list_all(ctx: Context) -> list[CollectionRow]:
    """Every collection, by name."""
    with ctx.sessions() as session:
        return repo.list_collections(session=session)


def create(
    ctx: Context,
    name: str,
    *,
    dim: int | None = None,
    model: str | None = None,
    fingerprint: str | None = None,
    metric: Metric | str = "cosine",
    index: IndexChoice | str = "auto",
    index_params: dict[str, Any] | None = None,
    keyword: dict[str, Any] | None = None,
) -> CollectionStats:
    """Create a collection of ``model``'s vectors, or of raw vectors of ``dim``; its stats.

    Raises:
        InvalidInput: unknown metric or index kind, no model and no dim, a dim that
            is not the model's, or unknown keyword analysis settings.
        Conflict: the name is taken.
        EncoderError: the model cannot be loaded.
    """
    if model is not None:
        model = canonical_spec(model)  # a local path is stored absolute
        encoder = ctx.encoders.get(model)
        if dim is not None and dim != encoder.dim:
            raise InvalidInput(f"model {model!r} makes {encoder.dim}-d vectors, not {dim}")
        dim, fingerprint = encoder.dim, fingerprint or encoder.fingerprint
    if dim is None:
        raise InvalidInput("a collection needs a model, or a dim for raw vectors")
    checked_metric, choice = as_metric(metric), as_index_choice(index)
    analysis = checked_keyword(keyword)
    with ctx.sessions.begin() as session:
        repo.create_collection(
            session=session,
            name=name,
            model=model,
            dim=dim,
            fingerprint=fingerprint or raw_vectors_fingerprint(dim),
            metric=checked_metric,
            index_kind=choice,
            index_params=index_params,
            keyword=analysis,
        )
    return stats(ctx, name)


def checked_keyword(keyword: dict[str, Any] | None) -> dict[str, Any] | None:
    """Keyword analysis settings as a collection row stores them (None: the defaults).

    Raises:
        InvalidInput: an unknown key, stemmer or stop-word language.
    """
    return Analysis.from_json(keyword).to_json() if keyword is not None else None


def delete(ctx: Context, name: str) -> None:
    """Delete a collection, its items and its index files."""
    ctx.collections.pop(name, None)
    with ctx.sessions.begin() as session:
        row = repo.delete_collection(session=session, name=name)
    forget(ctx, row)


def forget(ctx: Context, row: CollectionRow) -> None:
    """Drop what this process holds of a collection whose rows are gone: its cached row,
    live indexes and their files, keyword index, hit cache and perceptual hashes."""
    ctx.collections.pop(row.name, None)
    ctx.indexes.drop(row)
    ctx.keywords.drop(row)
    ctx.hits.drop(row)
    ctx.phashes.drop(row)


def remodelled(ctx: Context, row: CollectionRow) -> None:
    """Drop what this process holds of a collection's vectors once a migration moved it to
    another model (``row`` is the old row): its cached row, live index and map. The index
    files go too when this process writes them; the next use opens the new space."""
    ctx.collections.pop(row.name, None)
    ctx.indexes.drop(row, files=ctx.indexes.writes_files)
    with ctx.maps.lock:
        ctx.maps.fitted.pop(row.id, None)
        ctx.maps.views.pop(row.id, None)


def stats(ctx: Context, name: str, *, tolerate: bool = False) -> CollectionStats:
    """Count, dim, model, fingerprint, live index kind and its measured recall@10.

    Raises:
        NotFound: no such collection.
        Unavailable: its index cannot serve (unless ``tolerate``: then ``unavailable``
            says why and the index fields are empty).
    """
    with ctx.sessions() as session:
        row = repo.get_collection(session=session, name=name)
        count = repo.count_live(session=session, collection=row)
        manifest = oplog.get_manifest(session=session, collection=row)
    kind, params, recall, unavailable, exact_limit = "unavailable", {}, None, None, None
    try:
        current = ctx.indexes.stats(row)
    except Unavailable as e:
        if not tolerate:
            raise
        unavailable = str(e)
    else:
        kind, params, exact_limit = current.kind, current.params, current.exact_limit
        recall = 1.0 if kind == "flat" else None
        if manifest is not None and manifest.kind == kind and recall is None:
            recall = manifest.recall_at_10
    return CollectionStats(
        name=row.name,
        model=row.model,
        dim=row.dim,
        metric=row.metric,
        fingerprint=row.fingerprint,
        count=count,
        index_requested=row.index_kind,
        index_kind=kind,
        index_params=params,
        recall_at_10=recall,
        created_at=row.created_at.isoformat(),
        unavailable=unavailable,
        keyword=analysis_of(row).to_json(),
        exact_limit=exact_limit,
    )


def list_stats(ctx: Context) -> list[CollectionStats]:
    """:func:`stats` of every collection, by name (those that cannot serve say why)."""
    return [stats(ctx, row.name, tolerate=True) for row in list_all(ctx)]


def index_sizes(ctx: Context) -> dict[str, tuple[int, str]]:
    """Vectors in each collection's live index, and its kind (for metrics)."""
    out = {}
    for row in list_all(ctx):
        try:
            current = ctx.indexes.stats(row)
        except Unavailable:
            continue  # readyz and the collection's own answers say why
        out[row.name] = (current.count, current.kind)
    return out


def save(ctx: Context, name: str) -> CollectionStats:
    """Persist a collection's index now (it is also saved on shutdown); its stats after."""
    ctx.indexes.save(get(ctx, name))
    return stats(ctx, name)


def rebuild(ctx: Context, name: str) -> tuple[OpenReport, CollectionStats]:
    """Rebuild a collection's index from the stored vectors (no re-encoding) and save it."""
    report = ctx.indexes.rebuild(get(ctx, name))
    return report, stats(ctx, name)


def encoder_of(ctx: Context, collection: CollectionRow) -> Encoder | None:
    """The collection's encoder (checked against its fingerprint); None for raw vectors.

    Raises:
        EncoderError: the model cannot be loaded.
        ModelMismatch: the weights here are not those the collection was built with.
    """
    if collection.model is None:
        return None
    return ctx.encoders.checked(collection.model, collection.fingerprint)
