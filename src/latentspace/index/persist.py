"""The on-disk format of a saved index: generations of data files under a manifest.

A saved index is a folder with data files of one *generation* (for FAISS indexes
``index.<generation>.faiss`` and ``slots.<generation>.npy``) and ``manifest.json``, which
names them. Data files of a new generation never overwrite the ones the current manifest
names; each is written atomically; then the manifest is replaced the same way (the commit
point); only then are older generations deleted. A crash at any moment leaves the old index
or the new one, whole.

The manifest records the faiss version, kind and parameters, dim, encoder fingerprint,
count, the last applied oplog sequence and the sha256 of each file; :func:`verified_files`
checks every one and refuses a mismatch. :func:`write_faiss` and :func:`read_faiss` are the
FAISS generation (a serialised index and its ``slot → id`` array) that
:class:`~latentspace.index.faiss_index.FaissIndex` saves and loads.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from latentspace.atomic import atomic_write, atomic_write_with, sha256_file
from latentspace.errors import IndexCorrupted

__all__ = [
    "FORMAT_VERSION",
    "Manifest",
    "read_faiss",
    "read_manifest",
    "verified_files",
    "write_faiss",
    "write_generation",
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


# A part of a generation: its bytes, or a function that writes it to the path it is given
# (a large index streams to its file rather than through a copy in memory).
Part = bytes | Callable[[Path], None]


def _write_part(path: Path, data: Part) -> str:
    # Atomically (temporary file, fsync, rename, fsync of the folder); returns its sha256.
    if isinstance(data, bytes):
        atomic_write(path, data)
        return hashlib.sha256(data).hexdigest()
    atomic_write_with(path, data)
    return sha256_file(path)  # streamed by FAISS: read back once for its checksum


def write_generation(
    directory: Path,
    parts: dict[str, Part],
    *,
    faiss_version: str,
    spec: dict[str, Any],
    dim: int,
    count: int,
    fingerprint: str,
    oplog_seq: int,
    dead: list[int],
) -> Manifest:
    """Write ``parts`` (``{"index.faiss": bytes or writer, ...}``) as a new generation and
    commit it.

    Each part ``stem.ext`` is stored as ``stem.<generation>.ext``.
    """
    generation = uuid.uuid4().hex[:12]
    checksums = {}
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in parts.items():
        stem, _, ext = name.partition(".")
        stored = f"{stem}.{generation}.{ext}"
        checksums[stored] = _write_part(directory / stored, data)
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        faiss_version=faiss_version,
        spec=spec,
        dim=dim,
        count=count,
        fingerprint=fingerprint,
        oplog_seq=oplog_seq,
        checksums=checksums,
        dead=dead,
        saved_at=time.time(),
    )
    atomic_write(directory / _MANIFEST_FILE, json.dumps(asdict(manifest), indent=1).encode())
    _remove_stale(directory, keep=set(checksums))
    return manifest


def _remove_stale(directory: Path, keep: set[str]) -> None:
    for path in directory.iterdir():
        if path.name == _MANIFEST_FILE or path.name in keep:
            continue
        if path.name.startswith(".") or path.name.count(".") == 2:
            path.unlink(missing_ok=True)  # an older generation, or a killed write's temp file


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
    except (ValueError, TypeError, OSError) as e:  # garbage, or not readable (a folder, ...)
        raise IndexCorrupted(f"unreadable index manifest {path}: {e}") from e


def verified_files(
    directory: Path,
    *,
    faiss_version: str,
    fingerprint: str | None = None,
    dim: int | None = None,
) -> tuple[Manifest, dict[str, Path]]:
    """The manifest and its data files (``{"index.faiss": path, ...}``), all verified.

    Raises:
        IndexCorrupted: a file is missing, truncated or altered, or the manifest disagrees
            with the files, ``faiss_version``, ``fingerprint`` or ``dim``.
    """
    manifest = read_manifest(directory)
    if manifest.format_version != FORMAT_VERSION:
        raise IndexCorrupted(
            f"{directory}: index format {manifest.format_version}, expected {FORMAT_VERSION}"
        )
    if manifest.faiss_version != faiss_version:
        raise IndexCorrupted(
            f"{directory}: written by faiss {manifest.faiss_version}, this is {faiss_version}"
        )
    if fingerprint is not None and manifest.fingerprint != fingerprint:
        raise IndexCorrupted(
            f"{directory}: built for encoder {manifest.fingerprint[:12]}…, not {fingerprint[:12]}…"
        )
    if dim is not None and manifest.dim != dim:
        raise IndexCorrupted(f"{directory}: dim {manifest.dim}, expected {dim}")
    files = {}
    for name, expected in manifest.checksums.items():
        path = directory / name
        if not path.is_file():
            raise IndexCorrupted(f"{path} is missing")
        try:
            digest = sha256_file(path)
        except OSError as e:
            raise IndexCorrupted(f"{path} cannot be read: {e}") from e
        if digest != expected:
            raise IndexCorrupted(f"{path} does not match its checksum (truncated or altered)")
        stem, _, rest = name.partition(".")
        files[f"{stem}.{rest.rpartition('.')[2]}"] = path
    return manifest, files


def write_faiss(directory: Path, index: Any, slot_ids: np.ndarray, **manifest: Any) -> None:
    """Write a FAISS index (None: empty) and its ``slot → id`` array as one generation.

    The index streams straight to its file (FAISS's own writer, binary indexes too): no
    serialised copy of it is held in memory.
    """
    slots = io.BytesIO()
    np.save(slots, slot_ids, allow_pickle=False)

    def write_index(path: Path) -> None:
        if index is None:
            path.write_bytes(b"")
        elif isinstance(index, faiss.IndexBinary):
            faiss.write_index_binary(index, str(path))
        else:
            faiss.write_index(index, str(path))

    write_generation(
        directory,
        {"index.faiss": write_index, "slots.npy": slots.getvalue()},
        faiss_version=faiss.__version__,
        **manifest,
    )


def read_faiss(
    directory: Path, *, fingerprint: str | None, dim: int | None, mmap: bool
) -> tuple[Manifest, Any, np.ndarray]:
    """The manifest, FAISS index (None when it was empty) and ``slot → id`` array of a
    generation written by :func:`write_faiss`, checked against each other.

    Args:
        fingerprint: the encoder fingerprint the index must have been built with.
        dim: the dimension it must have.
        mmap: memory-map the FAISS file read-only (large read-only indexes).

    Raises:
        IndexCorrupted: a file is missing, truncated or altered, or the manifest
            disagrees with the files, the faiss version, ``fingerprint`` or ``dim``.
    """
    manifest, files = verified_files(
        directory, faiss_version=faiss.__version__, fingerprint=fingerprint, dim=dim
    )
    if "index.faiss" not in files or "slots.npy" not in files:
        raise IndexCorrupted(f"{directory}: the manifest names no index or slots file")
    inner: Any = None
    try:
        slot_ids = np.load(files["slots.npy"], allow_pickle=False).astype(np.int64)
        if files["index.faiss"].stat().st_size:
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
            path = str(files["index.faiss"])
            binary = manifest.spec.get("params", {}).get("quantization") == "binary"
            read = faiss.read_index_binary if binary else faiss.read_index
            inner = read(path, flags)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise IndexCorrupted(f"{directory}: cannot read index: {e}") from e
    live = int((slot_ids >= 0).sum())
    stored = int(inner.ntotal) if inner is not None else 0
    if live != manifest.count or stored != manifest.count + len(manifest.dead):
        raise IndexCorrupted(
            f"{directory}: manifest says {manifest.count} vectors, files hold {live} "
            f"live of {stored}"
        )
    return manifest, inner, slot_ids
