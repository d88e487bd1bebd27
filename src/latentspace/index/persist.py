"""Saving and loading indexes with a manifest; atomic writes, verified reads.

A saved index is a folder with ``index.<generation>.faiss`` (the FAISS index),
``slots.<generation>.npy`` (slot → id) and ``manifest.json``, which names the files of its
generation. Data files of a new generation never overwrite the ones the current manifest
names; each is written to a temporary name, fsynced and renamed; then the manifest is replaced
the same way (the commit point) and the folder fsynced; only then are older generations
deleted. A crash at any moment leaves the old index or the new one, whole.

The manifest records the faiss version, kind and parameters, dim, metric, encoder
fingerprint, count, the last applied oplog sequence and the sha256 of each file;
:func:`load_index` checks every one and refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from latentspace.errors import IndexCorrupted
from latentspace.index.faiss_index import FaissIndex
from latentspace.index.spec import IndexSpec

__all__ = [
    "FORMAT_VERSION",
    "Manifest",
    "atomic_write",
    "load_index",
    "read_manifest",
    "save_index",
]

FORMAT_VERSION = 1
_MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What a saved index is and how to verify it."""

    format_version: int
    faiss_version: str
    spec: dict[str, Any]
    dim: int
    count: int
    fingerprint: str
    oplog_seq: int
    checksums: dict[str, str]
    dead: list[int] = field(default_factory=list)
    saved_at: float = 0.0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a crash leaves the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def save_index(
    index: FaissIndex, directory: str | Path, *, fingerprint: str = "", oplog_seq: int = 0
) -> Manifest:
    """Write ``index`` into ``directory`` with its manifest; returns the manifest."""
    directory = Path(directory)
    with index._lock.read():  # a consistent snapshot: writers wait
        blob = b"" if index._cpu is None else faiss.serialize_index(index._cpu).tobytes()
        slots = io.BytesIO()
        np.save(slots, index._slot_ids, allow_pickle=False)
        count, dead = len(index), sorted(index._dead)
    generation = uuid.uuid4().hex[:12]
    index_file, slots_file = f"index.{generation}.faiss", f"slots.{generation}.npy"
    atomic_write(directory / index_file, blob)
    atomic_write(directory / slots_file, slots.getvalue())
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        faiss_version=faiss.__version__,
        spec=index.spec.to_json(),
        dim=index.dim,
        count=count,
        fingerprint=fingerprint,
        oplog_seq=oplog_seq,
        checksums={
            index_file: hashlib.sha256(blob).hexdigest(),
            slots_file: hashlib.sha256(slots.getvalue()).hexdigest(),
        },
        dead=dead,
        saved_at=time.time(),
    )
    atomic_write(directory / _MANIFEST_FILE, json.dumps(asdict(manifest), indent=1).encode())
    _remove_stale(directory, keep=set(manifest.checksums))
    return manifest


def _data_files(directory: Path) -> list[Path]:
    return [*directory.glob("index.*.faiss"), *directory.glob("slots.*.npy")]


def _remove_stale(directory: Path, keep: set[str]) -> None:
    for path in _data_files(directory):
        if path.name not in keep:
            path.unlink(missing_ok=True)
    for path in directory.glob(".*.*"):  # temporary files of writes that were killed
        path.unlink(missing_ok=True)


def read_manifest(directory: str | Path) -> Manifest:
    """The manifest of a saved index.

    Raises:
        IndexCorrupted: missing or unreadable manifest.
    """
    path = Path(directory) / _MANIFEST_FILE
    try:
        return Manifest(**json.loads(path.read_text()))
    except FileNotFoundError as e:
        raise IndexCorrupted(f"no index manifest at {path}") from e
    except (ValueError, TypeError) as e:
        raise IndexCorrupted(f"unreadable index manifest {path}: {e}") from e


def load_index(
    directory: str | Path,
    *,
    fingerprint: str | None = None,
    dim: int | None = None,
    mmap: bool = False,
    use_gpu: bool = False,
) -> tuple[FaissIndex, Manifest]:
    """Load and verify a saved index.

    Args:
        fingerprint: the encoder fingerprint the index must have been built with.
        dim: the dimension it must have.
        mmap: memory-map the FAISS file read-only (large read-only indexes).

    Raises:
        IndexCorrupted: a file is missing, truncated or altered, or the manifest disagrees
            with the files, the faiss version, ``fingerprint`` or ``dim``.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest.format_version != FORMAT_VERSION:
        raise IndexCorrupted(
            f"{directory}: index format {manifest.format_version}, expected {FORMAT_VERSION}"
        )
    if manifest.faiss_version != faiss.__version__:
        raise IndexCorrupted(
            f"{directory}: written by faiss {manifest.faiss_version}, this is {faiss.__version__}"
        )
    if fingerprint is not None and manifest.fingerprint != fingerprint:
        raise IndexCorrupted(
            f"{directory}: built for encoder {manifest.fingerprint[:12]}…, not {fingerprint[:12]}…"
        )
    if dim is not None and manifest.dim != dim:
        raise IndexCorrupted(f"{directory}: dim {manifest.dim}, expected {dim}")
    for name, expected in manifest.checksums.items():
        path = directory / name
        if not path.is_file():
            raise IndexCorrupted(f"{path} is missing")
        if _sha256(path) != expected:
            raise IndexCorrupted(f"{path} does not match its checksum (truncated or altered)")
    index_file = next((n for n in manifest.checksums if n.endswith(".faiss")), None)
    slots_file = next((n for n in manifest.checksums if n.endswith(".npy")), None)
    if index_file is None or slots_file is None:
        raise IndexCorrupted(f"{directory}: the manifest names no index or slots file")
    try:
        slot_ids = np.load(directory / slots_file, allow_pickle=False)
        spec = IndexSpec.from_json(manifest.spec)
        index = FaissIndex(spec, manifest.dim, use_gpu=use_gpu)
        if (directory / index_file).stat().st_size:
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
            index._cpu = faiss.read_index(str(directory / index_file), flags)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise IndexCorrupted(f"{directory}: cannot read index: {e}") from e
    index._spec = spec
    index._slot_ids = slot_ids.astype(np.int64)
    live = np.flatnonzero(slot_ids >= 0)
    index._id_slot = dict(zip(slot_ids[live].tolist(), live.tolist(), strict=True))
    index._dead = set(manifest.dead)
    stored = int(index._cpu.ntotal) if index._cpu is not None else 0
    if len(index) != manifest.count or stored != manifest.count + len(index._dead):
        raise IndexCorrupted(
            f"{directory}: manifest says {manifest.count} vectors, files hold {len(index)} "
            f"live of {stored}"
        )
    index._sync_gpu()
    if mmap and index._cpu is not None:
        index._read_only = True
    return index, manifest
