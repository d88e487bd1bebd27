"""Collections: create, look up, inspect, delete; save and rebuild their indexes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from latentspace.embedder import Encoder
from latentspace.embedder.registry import canonical_spec
from latentspace.errors import InvalidInput, Unavailable
from latentspace.index import IndexSpec
from latentspace.index.spec import rescore_of
from latentspace.keyword import Analysis
from latentspace.live.indexes import OpenReport
from latentspace.live.keywords import analysis_of
from latentspace.service import tuning
from latentspace.service.context import Context
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
    "every",
    "get",
    "index_sizes",
    "list_all",
    "list_stats",
    "nothing",
    "raw_vectors_fingerprint",
    "rebuild",
    "save",
    "stats",
]


def every(name: str) -> bool:
    """The reach of a caller who may see every collection (``covers`` arguments)."""
    del name
    return True


def nothing(name: str) -> bool:
    """The reach of a caller who may see no collection."""
    del name
    return False


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
    payload_index: dict[str, Any] | None = None
    quantization: str = "none"  # how the live index codes its rows
    quantization_requested: str = "auto"
    rescore: int | None = None  # candidates per hit rescored (quantized indexes)
    index_bytes: int = 0
    rebuilding: bool = False
    recall_target: float = 0.95
    ttl_seconds: int | None = None  # items without their own expiry get one this far ahead


def get(ctx: Context, name: str) -> CollectionRow:
    """The collection row (cached: a row changes only when a migration moves the collection
    to another model, and then every process drops it, see ``LiveState.remodelled``).

    Raises:
        NotFound: no such collection.
    """
    return ctx.live.rows.get(name)


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
    ttl_seconds: int | None = None,
) -> CollectionStats:
    """Create a collection of ``model``'s vectors, or of raw vectors of ``dim``; its stats.
    With ``ttl_seconds``, items written without an expiry expire that long after.

    Raises:
        InvalidInput: unknown metric or index kind, no model and no dim, a dim that
            is not the model's, unknown keyword analysis settings, or a ttl below 1.
        Conflict: the name is taken.
        EncoderError: the model cannot be loaded.
    """
    if model is not None:
        model = canonical_spec(model)  # a local path is stored absolute
        encoder = ctx.live.encoders.get(model)
        if dim is not None and dim != encoder.dim:
            raise InvalidInput(f"model {model!r} makes {encoder.dim}-d vectors, not {dim}")
        dim, fingerprint = encoder.dim, fingerprint or encoder.fingerprint
    if dim is None:
        raise InvalidInput("a collection needs a model, or a dim for raw vectors")
    if ttl_seconds is not None and ttl_seconds < 1:
        raise InvalidInput(f"ttl_seconds must be at least 1, got {ttl_seconds}")
    checked_metric, choice = as_metric(metric), as_index_choice(index)
    analysis = checked_keyword(keyword)
    index_params = tuning.checked_codes(
        dim=dim, metric=checked_metric, index=choice, params=index_params
    )
    with ctx.sessions.begin() as session:
        row = repo.create_collection(
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
        row.ttl_seconds = ttl_seconds
    return stats(ctx, name)


def checked_keyword(keyword: dict[str, Any] | None) -> dict[str, Any] | None:
    """Keyword analysis settings as a collection row stores them (None: the defaults).

    Raises:
        InvalidInput: an unknown key, stemmer or stop-word language.
    """
    return Analysis.from_json(keyword).to_json() if keyword is not None else None


def delete(ctx: Context, name: str) -> None:
    """Delete a collection and its items; this process forgets everything it held of it
    (index, keyword index, hits, hashes, map and their files)."""
    with ctx.sessions.begin() as session:
        row = repo.delete_collection(session=session, name=name)
    ctx.live.forget(row)


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
    quantization, index_bytes, rebuilding = "none", 0, False
    try:
        current = ctx.live.indexes.stats(row)
    except Unavailable as e:
        if not tolerate:
            raise
        unavailable = str(e)
    else:
        kind, params, exact_limit = current.kind, current.params, current.exact_limit
        quantization, index_bytes = current.quantization, current.bytes
        rebuilding = current.rebuilding
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
        keyword=analysis_of(row, ctx.live.damage).to_json(),
        exact_limit=exact_limit,
        payload_index=_payload_index(ctx, row),
        quantization=quantization,
        quantization_requested=str((row.index_params or {}).get("quantization", "auto")),
        rescore=rescore_of(IndexSpec(kind, as_metric(row.metric), params))
        if quantization != "none"
        else None,
        index_bytes=index_bytes,
        rebuilding=rebuilding,
        ttl_seconds=row.ttl_seconds,
        recall_target=tuning.recall_target_of(row.index_params),
    )


def _payload_index(ctx: Context, row: CollectionRow) -> dict[str, Any] | None:
    described = ctx.live.payloads.describe(row)
    if described is None:
        return None
    return {
        "items": described.items,
        "paths": described.paths,
        "memory_bytes": described.memory_bytes,
        "total_bytes": sum(described.memory_bytes.values()),
    }


def list_stats(ctx: Context, covers: Callable[[str], bool] = every) -> list[CollectionStats]:
    """:func:`stats` of every collection ``covers`` accepts, by name (those that cannot
    serve say why)."""
    return [stats(ctx, row.name, tolerate=True) for row in list_all(ctx) if covers(row.name)]


def index_sizes(ctx: Context) -> dict[str, tuple[int, str]]:
    """Vectors in each collection's live index, and its kind (for metrics)."""
    out = {}
    for row in list_all(ctx):
        try:
            current = ctx.live.indexes.stats(row)
        except Unavailable:
            continue  # readyz and the collection's own answers say why
        out[row.name] = (current.count, current.kind)
    return out


def save(ctx: Context, name: str) -> CollectionStats:
    """Persist a collection's index now (it is also saved on shutdown); its stats after."""
    ctx.live.indexes.save(get(ctx, name))
    return stats(ctx, name)


def rebuild(ctx: Context, name: str) -> tuple[OpenReport, CollectionStats]:
    """Rebuild a collection's index from the stored vectors (no re-encoding) and save it."""
    report = ctx.live.indexes.rebuild(get(ctx, name))
    return report, stats(ctx, name)


def encoder_of(ctx: Context, collection: CollectionRow) -> Encoder | None:
    """The collection's encoder (checked against its fingerprint); None for raw vectors.

    Raises:
        EncoderError: the model cannot be loaded.
        ModelMismatch: the weights here are not those the collection was built with.
    """
    if collection.model is None:
        return None
    return ctx.live.encoders.checked(collection.model, collection.fingerprint)
