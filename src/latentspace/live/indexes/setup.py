"""Where a collection's index may live: the GPU when asked for, a folder this process can use."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from latentspace.errors import Unavailable, VectorIndexError
from latentspace.index import FaissIndex, IndexSpec, estimate_recall, gpu_available
from latentspace.settings import IndexSettings
from latentspace.store import oplog
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow
from latentspace.types import as_index_choice, as_metric

__all__ = [
    "exact_from_sql",
    "measured_recall",
    "requested_spec",
    "resolve_gpu",
    "set_aside_unusable",
]

logger = logging.getLogger(__name__)


def requested_spec(collection: CollectionRow) -> IndexSpec | None:
    """The index the collection asks for; None for ``auto`` (planned by size and budget)."""
    choice = as_index_choice(collection.index_kind)
    if choice == "auto":
        return None
    return IndexSpec(choice, as_metric(collection.metric), dict(collection.index_params))


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
    """recall@10 of a collection's index against exact search over its own vectors.

    Exact kinds report 1.0 without measuring. Lossy kinds (IVF-PQ) are measured against
    the stored vectors from SQL; ``None`` for an empty index.
    """
    if len(index) == 0:
        return None
    if index.kind == "flat":
        return 1.0
    if index.lossless:
        ids, vectors = index.snapshot()
    else:
        with sessions() as session:
            ids, vectors = repo.live_vectors(session=session, collection=collection)
    return estimate_recall(index, ids, vectors, k=10, sample=sample)


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
