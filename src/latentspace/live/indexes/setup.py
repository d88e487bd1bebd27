"""Where a collection's index may live: the GPU when asked for, a folder this process can use."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from latentspace.errors import Unavailable, VectorIndexError
from latentspace.index import FaissIndex, IndexSpec, gpu_available
from latentspace.index.codes import RowSource
from latentspace.index.recall import streamed_recall
from latentspace.index.spec import buildable, plan_index
from latentspace.settings import IndexSettings
from latentspace.store import oplog, reads
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow
from latentspace.types import as_index_choice, as_metric

__all__ = [
    "RECALL_TARGET",
    "codes_of",
    "exact_from_sql",
    "measured_recall",
    "planned_spec",
    "requested_spec",
    "resolve_gpu",
    "row_source",
    "set_aside_unusable",
    "spec_params",
    "vector_batches",
]

logger = logging.getLogger(__name__)

# The recall@10 a collection holds its approximate index to unless it sets its own.
RECALL_TARGET = 0.95
# Collection settings that are not the index's parameters.
_NOT_INDEX = ("recall_target",)


def codes_of(collection: CollectionRow) -> dict[str, Any]:
    """How the collection asks its rows to be coded: ``quantization`` (``auto`` when unset)
    and ``rescore`` (when set)."""
    params = collection.index_params or {}
    out: dict[str, Any] = {"quantization": params.get("quantization", "auto")}
    if "rescore" in params:
        out["rescore"] = params["rescore"]
    return out


def requested_spec(collection: CollectionRow) -> IndexSpec | None:
    """The index the collection asks for; None for ``auto`` (planned by size and budget)."""
    choice = as_index_choice(collection.index_kind)
    if choice == "auto":
        return None
    return IndexSpec(choice, as_metric(collection.metric), spec_params(collection.index_params))


def spec_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """A collection's ``index_params`` as an index spec takes them: without the collection's
    own settings (``recall_target``), and ``quantization: auto`` left to the plan."""
    out = {k: v for k, v in (params or {}).items() if k not in _NOT_INDEX}
    if out.get("quantization") == "auto":
        del out["quantization"]
    return out


def planned_spec(
    collection: CollectionRow, n: int, *, memory_budget: int | None, exact_limit: int
) -> IndexSpec:
    """What to build for ``n`` of the collection's vectors: its requested kind, or the
    ``auto`` plan under its quantization; exact search while too few to train either."""
    codes = codes_of(collection)
    spec = requested_spec(collection) or plan_index(
        n,
        collection.dim,
        as_metric(collection.metric),
        memory_budget,
        exact_limit=exact_limit,
        quantization=codes["quantization"],
        rescore=codes.get("rescore"),
    )
    return buildable(spec, n)


def resolve_gpu(settings: IndexSettings) -> bool:
    """Whether indexes run on the GPU under ``settings.gpu``.

    Raises:
        VectorIndexError: ``gpu = "on"`` and this faiss build sees no GPU.
    """
    if settings.gpu == "off":
        return False
    available = gpu_available()
    if settings.gpu == "on" and not available:
        raise VectorIndexError(
            "LATENTSPACE_INDEX__GPU=on, but this faiss build sees no GPU (install faiss-gpu "
            "and check the driver, or set LATENTSPACE_INDEX__GPU=auto)"
        )
    return available


def set_aside_unusable(path: Path, name: str) -> None:
    """Move ``path`` aside when it cannot be collection ``name``'s index folder.

    A file where the folder should be, or a folder this process cannot use, is renamed
    (never deleted: it is evidence) so the index is rebuilt into a fresh folder.

    Raises:
        Unavailable: the folder can neither be used nor moved.
    """
    manifest = path / "manifest.json"
    unusable = path.exists() and not (
        path.is_dir()
        and os.access(path, os.R_OK | os.W_OK | os.X_OK)
        and (manifest.is_file() or not manifest.exists())
    )
    if not unusable:
        return
    aside = path.with_name(f"{path.name}.unusable-{time.strftime('%Y%m%dT%H%M%S')}")
    try:
        path.rename(aside)
    except OSError as e:
        raise Unavailable(
            f"collection {name!r}: its index folder {path} cannot be used nor moved aside ({e})"
        ) from e
    logger.warning(
        "collection %s: %s could not be used as an index folder; moved to %s", name, path, aside
    )


def measured_recall(
    index: FaissIndex,
    sessions: sessionmaker[Session],
    collection: CollectionRow,
    *,
    sample: int = 100,
) -> float | None:
    """recall@10 of a collection's index against exact search over its stored vectors.

    ``sample`` stored vectors serve as queries; their exact answers are found by streaming
    every stored vector from SQL a batch at a time (nothing is held beside the index but
    one batch). A flat float32 index reports 1.0 without measuring; ``None`` when empty.
    """
    if len(index) == 0:
        return None
    if index.kind == "flat" and index.lossless:
        return 1.0
    ids = index.ids()
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(ids, size=min(sample, ids.shape[0]), replace=False))
    with sessions() as session:
        found = repo.vectors_of(session=session, item_ids=chosen.tolist(), dim=collection.dim)
    queries = np.stack([found[i] for i in chosen.tolist() if i in found])
    return streamed_recall(index, queries, vector_batches(sessions, collection)(), k=10)


def vector_batches(
    sessions: sessionmaker[Session], collection: CollectionRow
) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """The collection's live (ids, vectors) from SQL, a batch at a time, for rebuilds: the
    items there were when the read began (a rebuild replays later writes itself; chasing
    them page after page, it never ended while writes kept coming)."""

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with sessions() as session:
            upto = repo.last_item_id(session=session, collection=collection)
            yield from repo.iter_live_vectors(session=session, collection=collection, upto=upto)

    return batches


def row_source(sessions: sessionmaker[Session], collection: CollectionRow) -> RowSource:
    """Float32 vectors by id from SQL: what a quantized index rescores its candidates with."""

    engine = sessions.kw["bind"]

    def rows(ids: np.ndarray) -> dict[int, np.ndarray]:
        with engine.connect() as connection:
            return reads.stored_vectors(
                connection=connection, item_ids=ids.tolist(), dim=collection.dim
            )

    return rows


def exact_from_sql(
    sessions: sessionmaker[Session], collection: CollectionRow
) -> tuple[FaissIndex, int]:
    """An exact index of the collection's live vectors read from SQL, and the oplog
    sequence it holds: the fallback that needs nothing but SQL."""
    with sessions() as session:
        sql_seq = oplog.last_seq(session=session, collection=collection)
        ids, vectors = repo.live_vectors(session=session, collection=collection)
    index = FaissIndex(IndexSpec("flat", as_metric(collection.metric)), collection.dim)
    if ids.size:
        index.add(ids, vectors)
    return index, sql_seq
