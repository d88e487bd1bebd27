"""Where a collection's index may live: the GPU when asked for, a folder this process can use."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from latentspace.errors import Unavailable, VectorIndexError
from latentspace.index import gpu_available
from latentspace.settings import IndexSettings

__all__ = ["resolve_gpu", "set_aside_unusable"]

logger = logging.getLogger(__name__)


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
