"""Qdrant's collections and snapshots API over latentspace collections.

A collection created through Qdrant is a raw-vector collection: ``vectors: {size,
distance}`` gives its dim and metric (Cosine → cosine, Dot → ip, Euclid → l2); a
``quantization_config`` of ``scalar`` makes it ``sq8``, ``binary`` makes it ``binary``, and
``datatype: float16`` makes it ``fp16``. Every latentspace collection is visible through
Qdrant too, model collections included. HNSW, optimizer, WAL and sharding settings are
taken and left to latentspace's own; named, sparse and multi-vectors are refused.

Snapshots are latentspace snapshot files in the server's snapshot folder, named
``{collection}-{UTC time}.snapshot``; recovering one restores it in place of the collection.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from latentspace.errors import InvalidInput, NotFound
from latentspace.service import collections, snapshots, tuning
from latentspace.service.context import Context

__all__ = [
    "create",
    "delete_snapshot",
    "drop",
    "exists",
    "info",
    "list_names",
    "list_snapshots",
    "recover",
    "snapshot_path",
    "take_snapshot",
    "update",
]

_METRICS = {"Cosine": "cosine", "Dot": "ip", "Euclid": "l2"}
_DISTANCES = {metric: distance for distance, metric in _METRICS.items()}
_QUANTIZATION = {"sq8": {"scalar": {"type": "int8"}}, "binary": {"binary": {}}}


def _vector_params(body: dict[str, Any]) -> tuple[int, str, str | None]:
    vectors = body.get("vectors")
    if not isinstance(vectors, dict):
        raise InvalidInput("vectors: {size, distance} of the collection's one vector")
    if "size" not in vectors:
        if list(vectors) == [""]:
            vectors = vectors[""]
        else:
            raise InvalidInput("vectors: named vectors are not supported; give {size, distance}")
    size, distance = vectors.get("size"), vectors.get("distance")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 65_536:
        raise InvalidInput(f"vectors.size: a whole number from 1 to 65536, got {size!r}")
    if distance not in _METRICS:
        raise InvalidInput(
            f"vectors.distance: one of {sorted(_METRICS)}, got {distance!r}"
            + (" (Manhattan is not supported)" if distance == "Manhattan" else "")
        )
    if vectors.get("multivector_config") is not None:
        raise InvalidInput("vectors.multivector_config: multi-vectors are not supported")
    quantization = _quantization(
        vectors.get("quantization_config") or body.get("quantization_config")
    )
    datatype = vectors.get("datatype")
    if datatype == "float16" and quantization is None:
        quantization = "fp16"
    elif datatype not in (None, "float32", "float16"):
        raise InvalidInput(f"vectors.datatype: float32 or float16, got {datatype!r}")
    return size, _METRICS[distance], quantization


def _quantization(config: object) -> str | None:
    if config is None:
        return None
    if isinstance(config, dict) and "scalar" in config:
        return "sq8"
    if isinstance(config, dict) and "binary" in config:
        return "binary"
    raise InvalidInput("quantization_config: scalar or binary (product is not supported)")


def create(ctx: Context, name: str, body: dict[str, Any]) -> bool:
    """Create a raw-vector collection from Qdrant's ``CreateCollection``.

    Raises:
        InvalidInput: what is not supported, naming the field, or a bad name.
        Conflict: the name is taken.
    """
    if not isinstance(body, dict):
        raise InvalidInput("a collection is created from an object with vectors")
    for unsupported in ("sparse_vectors", "init_from", "sharding_method"):
        if body.get(unsupported):
            raise InvalidInput(f"{unsupported} is not supported")
    size, metric, quantization = _vector_params(body)
    params = {"quantization": quantization} if quantization else None
    collections.create(ctx, name, dim=size, metric=metric, index_params=params)
    return True


def update(ctx: Context, name: str, body: dict[str, Any]) -> bool:
    """Qdrant's collection update: a ``quantization_config`` is applied (rebuilt in the
    background); the other settings are taken and left as they are.

    Raises:
        InvalidInput: an unsupported quantization; NotFound: no such collection.
    """
    collections.get(ctx, name)
    if isinstance(body, dict) and body.get("quantization_config") is not None:
        config = body["quantization_config"]
        wanted = None if config == "Disabled" else _quantization(config)
        tuning.retune(ctx, name, {"quantization": wanted or "none"})
    return True


def info(ctx: Context, name: str) -> dict[str, Any]:
    """Qdrant's ``CollectionInfo`` of a collection.

    Raises:
        NotFound: no such collection.
    """
    stats = collections.stats(ctx, name, tolerate=True)
    status = "red" if stats.unavailable else "yellow" if stats.rebuilding else "green"
    params = stats.index_params
    return {
        "status": status,
        "optimizer_status": "ok" if not stats.unavailable else {"error": stats.unavailable},
        "indexed_vectors_count": stats.count,
        "points_count": stats.count,
        "segments_count": 1,
        "config": {
            "params": {
                "vectors": {"size": stats.dim, "distance": _DISTANCES[stats.metric]},
                "shard_number": 1,
                "replication_factor": 1,
                "write_consistency_factor": 1,
                "on_disk_payload": False,
            },
            "hnsw_config": {
                "m": int(params.get("m", 32)),
                "ef_construct": int(params.get("ef_construction", 80)),
                "full_scan_threshold": 10_000,
            },
            "optimizer_config": {
                "deleted_threshold": 0.2,
                "vacuum_min_vector_number": 1000,
                "default_segment_number": 0,
                "flush_interval_sec": 5,
            },
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": _QUANTIZATION.get(stats.quantization),
            "metadata": {
                "latentspace": {
                    "model": stats.model,
                    "index": stats.index_kind,
                    "quantization": stats.quantization,
                }
            },
        },
        "payload_schema": {},
    }


def list_names(ctx: Context, covers: Callable[[str], bool] = collections.every) -> dict[str, Any]:
    """Qdrant's ``CollectionsResponse``: the name of every collection ``covers`` accepts."""
    rows = collections.list_all(ctx)
    return {"collections": [{"name": row.name} for row in rows if covers(row.name)]}


def exists(ctx: Context, name: str) -> dict[str, bool]:
    """Qdrant's ``CollectionExistence``."""
    try:
        collections.get(ctx, name)
    except NotFound:
        return {"exists": False}
    return {"exists": True}


def drop(ctx: Context, name: str) -> bool:
    """Delete a collection; False when there was none (as Qdrant answers)."""
    try:
        collections.delete(ctx, name)
    except NotFound:
        return False
    return True


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(name) + r"-\d{4}(-\d\d){5}(-\d+)?\.snapshot")


def _description(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    made = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return {
        "name": path.name,
        "creation_time": made.strftime("%Y-%m-%dT%H:%M:%S"),
        "size": path.stat().st_size,
        "checksum": digest.hexdigest(),
    }


def take_snapshot(ctx: Context, name: str) -> dict[str, Any]:
    """Snapshot a collection into the snapshot folder; Qdrant's ``SnapshotDescription``.

    Raises:
        NotFound: no such collection.
    """
    collections.get(ctx, name)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H-%M-%S")
    folder = ctx.settings.resolved_snapshot_dir()
    file, n = f"{name}-{stamp}.snapshot", 1
    while (folder / file).exists():
        file, n = f"{name}-{stamp}-{n}.snapshot", n + 1
    path, _ = snapshots.take_to_folder(ctx, name, file)
    return _description(path)


def list_snapshots(ctx: Context, name: str) -> list[dict[str, Any]]:
    """The collection's snapshots in the snapshot folder, oldest first.

    Raises:
        NotFound: no such collection.
    """
    collections.get(ctx, name)
    folder = ctx.settings.resolved_snapshot_dir()
    if not folder.is_dir():
        return []
    pattern = _pattern(name)
    found = [p for p in folder.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    return [_description(p) for p in sorted(found, key=lambda p: p.name)]


def snapshot_path(ctx: Context, name: str, file: str) -> Path:
    """The file of one of the collection's snapshots.

    Raises:
        NotFound: no such snapshot of that collection.
    """
    if not _pattern(name).fullmatch(file):
        raise NotFound(f"no snapshot {file!r} of collection {name!r}")
    path = ctx.settings.resolved_snapshot_dir() / file
    if not path.is_file():
        raise NotFound(f"no snapshot {file!r} of collection {name!r}")
    return path


def delete_snapshot(ctx: Context, name: str, file: str) -> bool:
    """Delete one of the collection's snapshots.

    Raises:
        NotFound: no such snapshot of that collection.
    """
    snapshot_path(ctx, name, file).unlink()
    return True


def recover(
    ctx: Context, name: str, body: dict[str, Any], covers: Callable[[str], bool] = collections.every
) -> bool:
    """Restore a snapshot of the snapshot folder in place of collection ``name``:
    ``location`` is its file name or a ``file://`` URL of a file in that folder, a snapshot
    of a collection ``covers`` accepts.

    Raises:
        InvalidInput: another location (this server fetches nothing over the network),
            or a file that is no sound snapshot (nothing is changed).
        NotFound: no such file (or a snapshot of a collection beyond ``covers``).
    """
    location = body.get("location") if isinstance(body, dict) else None
    if not isinstance(location, str) or not location:
        raise InvalidInput("location: a snapshot's file name or file:// URL")
    url = urlparse(location)
    if url.scheme not in ("", "file"):
        raise InvalidInput(
            f"location: {url.scheme} URLs are not fetched; put the file in the snapshot "
            "folder and give its name"
        )
    file = Path(unquote(url.path)).name if url.scheme else location
    folder = ctx.settings.resolved_snapshot_dir().resolve()
    if url.scheme and Path(unquote(url.path)).resolve().parent != folder:
        raise InvalidInput(f"location: only files in the snapshot folder {folder} are read")
    snapshots.restore_file(ctx, file, name=name, replace=True, covers=covers)
    return True
