"""The snapshot file: one uncompressed tar whose first member is ``manifest.json``.

Members, in order: ``manifest.json`` (format, version, creator, schema revision, the
collection row, counts, and the byte size and sha256 of every other member),
``items.jsonl`` (one live item a line, in id order), ``vectors.f32`` (their vectors,
little-endian float32, row i for line i), from schema revision 0005 ``adapters.jsonl``
(the maps between model spaces that migrations fitted), and ``directions.jsonl``; then,
when asked for, the stored originals of its images (:mod:`.snapshot_originals`). Indexes
are not in it:
a restore builds them from SQL, so a snapshot moves between SQLite and PostgreSQL, CPU and
GPU, FAISS versions. :func:`read_snapshot` checks everything (sizes, checksums, counts,
every field, every vector) before it hands anything back, so a restore that gets a
:class:`Snapshot` has nothing left to refuse.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from latentspace import __version__
from latentspace.atomic import sha256_file
from latentspace.errors import InvalidInput
from latentspace.limits import check_id
from latentspace.store.snapshot_originals import (
    PREFIX,
    add_originals,
    checked_count,
    copy_hashed,
    extract_original,
    tally,
)
from latentspace.store.snapshots import ITEM_FIELDS, SnapshotItem
from latentspace.types import as_index_choice, as_metric

__all__ = [
    "FORMAT",
    "READABLE_REVISIONS",
    "Snapshot",
    "parts_of",
    "read_manifest",
    "read_snapshot",
    "write_snapshot",
]

FORMAT = "latentspace-snapshot"
VERSION = 1
MANIFEST = "manifest.json"
PARTS = ("items.jsonl", "vectors.f32", "adapters.jsonl", "directions.jsonl")
# Parts added since the first revision: a snapshot of an older one has none of them.
_PART_ADDED_IN = {"adapters.jsonl": "0005"}
# Schema revisions a version-1 snapshot may have been taken at, oldest first; the last is
# the migrations' head (a test holds them together). Item columns added since a revision
# are absent from its snapshots and restore as null.
READABLE_REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007")
_ADDED_IN = {"phash": "0004", "pixels": "0004", "size_bytes": "0004", "expires_at": "0007"}
_MANIFEST_BYTES = 1 << 20
_KINDS = ("text", "image", "vector")
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Snapshot:
    """A verified snapshot: its manifest, collection fields, items, directions and the
    adapters between model spaces that migrations fitted (each a dict of AdapterRow's
    fields)."""

    manifest: dict[str, Any]
    collection: dict[str, Any]
    items: list[SnapshotItem]
    directions: list[tuple[str, bytes, dict[str, Any], datetime]]
    adapters: list[dict[str, Any]] = field(default_factory=list)
    originals: list[str] = field(default_factory=list)  # sha256s, in scratch/originals


def parts_of(revision: str) -> tuple[str, ...]:
    """The parts a snapshot taken at schema ``revision`` holds, in order."""
    return tuple(p for p in PARTS if revision >= _PART_ADDED_IN.get(p, "0001"))


def write_snapshot(
    out: Path,
    parts: Path,
    *,
    collection: dict[str, Any],
    counts: dict[str, int],
    revision: str,
    originals: Sequence[tuple[str, Path]] = (),
) -> dict[str, Any]:
    """Write the tar of the parts in folder ``parts`` (and of ``originals``, each a stored
    image's sha256 and file) to ``out``; its manifest."""
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created_by": f"latentspace {__version__}",
        "created_at": datetime.now(UTC).isoformat(),
        "schema_revision": revision,
        "collection": collection,
        "counts": counts,
        "parts": {name: _digest(parts / name) for name in parts_of(revision)},
    }
    if originals:
        manifest["originals"] = tally(originals)
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(data), int(datetime.now(UTC).timestamp()), 0o644
        tar.addfile(info, io.BytesIO(data))
        for name in parts_of(revision):
            tar.add(parts / name, arcname=name, recursive=False)
        add_originals(tar, originals)
    return manifest


def _digest(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


# -- reading -------------------------------------------------------------------------------


def read_manifest(source: Path | IO[bytes]) -> dict[str, Any]:
    """The manifest of snapshot ``source`` (its file, or a stream of its start; unverified).

    Raises:
        InvalidInput: not a snapshot, or an unknown format, version or schema revision.
    """
    with _opened(source) as tar:
        return _manifest(tar)


def read_snapshot(source: Path, scratch: Path) -> Snapshot:
    """The snapshot in file ``source``, every part checked (extracted into ``scratch``).

    Raises:
        InvalidInput: not a snapshot, an unknown format, version or schema revision, a
            missing, extra, truncated or altered part, or a bad field or vector (the message
            names which).
    """
    with _opened(source) as tar:
        manifest = _manifest(tar)
        originals = _extract_parts(tar, manifest, scratch)
    collection = _collection(manifest.get("collection"))
    counts = manifest.get("counts")
    if not isinstance(counts, dict) or not all(
        isinstance(counts.get(k), int) and counts[k] >= 0 for k in ("items", "directions")
    ):
        raise InvalidInput("snapshot manifest: counts needs items and directions")
    revision = manifest["schema_revision"]
    items = list(_items(scratch, collection, counts["items"], revision))
    directions = _directions(scratch / "directions.jsonl", collection["dim"])
    if len(directions) != counts["directions"]:
        raise InvalidInput(
            f"snapshot holds {len(directions)} directions; its manifest says {counts['directions']}"
        )
    adapters = []
    if "adapters.jsonl" in parts_of(revision):
        adapters = _adapters(scratch / "adapters.jsonl")
        if len(adapters) != counts.get("adapters"):
            raise InvalidInput(
                f"snapshot holds {len(adapters)} adapters; its manifest says "
                f"{counts.get('adapters')!r}"
            )
    return Snapshot(manifest, collection, items, directions, adapters, originals)


@contextmanager
def _opened(source: Path | IO[bytes]) -> Iterator[tarfile.TarFile]:
    # The tar, read member by member; a damaged or foreign file is an InvalidInput.
    try:
        path, stream = (source, None) if isinstance(source, Path) else (None, source)
        with tarfile.open(path, "r:", stream) as tar:
            yield tar
    except (tarfile.TarError, EOFError, OSError) as e:
        raise InvalidInput(f"not a readable snapshot file (truncated, or not a tar): {e}") from e


def _manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile():
        raise InvalidInput(f"not a latentspace snapshot: its first member is not {MANIFEST}")
    if first.size > _MANIFEST_BYTES:
        raise InvalidInput(f"snapshot {MANIFEST} is over {_MANIFEST_BYTES} bytes")
    raw = _member(tar, first).read()
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInput(f"snapshot {MANIFEST} is not JSON: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"not a latentspace snapshot: format is not {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise InvalidInput(
            f"snapshot format version {manifest.get('version')!r} is not one this "
            f"latentspace reads ({VERSION}); restore it with the version that wrote it: "
            f"{manifest.get('created_by')!r}"
        )
    revision = manifest.get("schema_revision")
    if revision not in READABLE_REVISIONS:
        raise InvalidInput(
            f"snapshot schema revision {revision!r} is unknown here (this latentspace reads "
            f"{', '.join(READABLE_REVISIONS)}); it comes from {manifest.get('created_by')!r}"
        )
    parts, wanted = manifest.get("parts"), parts_of(revision)
    if not isinstance(parts, dict) or sorted(parts) != sorted(wanted):
        raise InvalidInput(f"snapshot manifest must list the parts {', '.join(wanted)}")
    return manifest


def _member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    f = tar.extractfile(member)
    if f is None:
        raise InvalidInput(f"snapshot member {member.name!r} is not a file")
    return f


def _extract_parts(tar: tarfile.TarFile, manifest: dict[str, Any], scratch: Path) -> list[str]:
    # Members are read as streams into files of our own naming: nothing in the archive
    # chooses a path, and each one is hashed on the way. The originals come after the
    # parts; their sha256s are returned.
    seen: set[str] = set()
    originals: dict[str, int] = {}
    wanted = parts_of(manifest["schema_revision"])
    for member in iter(tar.next, None):
        if member.name.startswith(PREFIX) and len(seen) == len(wanted):
            with _member(tar, member) as src:
                originals[extract_original(member, src, scratch)] = member.size
            continue
        if member.name not in wanted or member.name in seen or not member.isfile():
            raise InvalidInput(f"snapshot has an unexpected member {member.name!r}")
        seen.add(member.name)
        expected = manifest["parts"][member.name]
        if not isinstance(expected, dict) or member.size != expected.get("bytes"):
            raise InvalidInput(
                f"snapshot part {member.name} is {member.size} bytes; its manifest says "
                f"{expected.get('bytes') if isinstance(expected, dict) else expected!r}"
            )
        with _member(tar, member) as src:
            digest = copy_hashed(src, scratch / member.name)
        if digest != expected.get("sha256"):
            raise InvalidInput(
                f"snapshot part {member.name} fails its sha256: the file was altered or damaged"
            )
    missing = [name for name in wanted if name not in seen]
    if missing:
        raise InvalidInput(f"snapshot is truncated: {', '.join(missing)} missing")
    checked_count(manifest, originals)
    return sorted(originals)


def _collection(doc: object) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InvalidInput("snapshot manifest has no collection")
    dim = doc.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 65_536:
        raise InvalidInput(f"snapshot collection dim {dim!r} is not 1-65536")
    for key in ("name", "fingerprint"):
        if not isinstance(doc.get(key), str):
            raise InvalidInput(f"snapshot collection {key} must be a string")
    if doc.get("model") is not None and not isinstance(doc.get("model"), str):
        raise InvalidInput("snapshot collection model must be a string or null")
    for key in ("index_params", "keyword"):
        if doc.get(key) is not None and not isinstance(doc.get(key), dict):
            raise InvalidInput(f"snapshot collection {key} must be an object or null")
    return {
        "name": doc["name"],
        "model": doc.get("model"),
        "dim": dim,
        "fingerprint": doc["fingerprint"],
        "metric": as_metric(str(doc.get("metric", "cosine"))),
        "index_kind": as_index_choice(str(doc.get("index_kind", "auto"))),
        "index_params": doc.get("index_params") or {},
        "keyword": doc.get("keyword"),  # checked by the collection's creation
        "ttl_seconds": _ttl(doc.get("ttl_seconds")),
    }


def _ttl(value: object) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidInput("snapshot collection ttl_seconds must be a positive integer or null")
    return value


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                doc = json.loads(line)
            except (ValueError, UnicodeDecodeError) as e:
                raise InvalidInput(f"snapshot {path.name} line {number} is not JSON: {e}") from e
            if not isinstance(doc, dict):
                raise InvalidInput(f"snapshot {path.name} line {number} is not an object")
            yield number, doc


def _timestamp(value: object, where: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError as e:
        raise InvalidInput(f"{where}: {value!r} is not an ISO timestamp") from e
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _items(
    scratch: Path, collection: dict[str, Any], count: int, revision: str
) -> Iterator[SnapshotItem]:
    dim = collection["dim"]
    raw = (scratch / "vectors.f32").stat().st_size
    if raw != count * dim * 4:
        raise InvalidInput(
            f"snapshot vectors.f32 holds {raw} bytes; {count} items of {dim} float32 need "
            f"{count * dim * 4}"
        )
    vectors = np.fromfile(scratch / "vectors.f32", dtype="<f4").reshape(count, dim)
    bad = ~np.isfinite(vectors).all(axis=1)
    if collection["metric"] == "cosine":
        bad |= np.einsum("ij,ij->i", vectors, vectors) == 0
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInput(f"snapshot vector {row} is not finite (or is zero in a cosine space)")
    lacking = {f for f, since in _ADDED_IN.items() if revision < since}
    seen: set[str] = set()
    number = 0
    for number, doc in _lines(scratch / "items.jsonl"):
        where = f"snapshot items.jsonl line {number}"
        if number > count:
            break
        external_id = doc.get("id")
        if not isinstance(external_id, str):
            raise InvalidInput(f"{where}: id must be a string")
        check_id(external_id, name=f"{where}: id")
        if external_id in seen:
            raise InvalidInput(f"{where}: id {external_id!r} appears twice")
        seen.add(external_id)
        fields = {f: doc.get(f) for f in ITEM_FIELDS}
        _check_fields(fields, lacking, where)
        yield SnapshotItem(
            external_id,
            fields,
            _timestamp(doc.get("created_at"), where),
            _timestamp(doc.get("updated_at"), where),
            vectors[number - 1].tobytes(),  # read as little-endian float32 above
        )
    if number != count:
        raise InvalidInput(f"snapshot holds {number} items; its manifest says {count}")


def _check_fields(fields: dict[str, Any], lacking: set[str], where: str) -> None:
    if fields["kind"] not in _KINDS:
        raise InvalidInput(f"{where}: kind {fields['kind']!r} is not one of {_KINDS}")
    sha = fields["sha256"]
    if not isinstance(sha, str) or len(sha) != 64 or not _HEX.fullmatch(sha):
        raise InvalidInput(f"{where}: sha256 must be 64 hex characters")
    for key in ("uri", "text", "document_id"):
        if fields[key] is not None and not isinstance(fields[key], str):
            raise InvalidInput(f"{where}: {key} must be a string or null")
    if fields["metadata"] is None:
        fields["metadata"] = {}
    if not isinstance(fields["metadata"], dict):
        raise InvalidInput(f"{where}: metadata must be an object")
    for key in ("phash", "pixels", "size_bytes"):
        value = fields[key]
        if key in lacking:
            fields[key] = None
        elif value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63
        ):
            raise InvalidInput(f"{where}: {key} must be a 64-bit integer or null")
    expires = None if "expires_at" in lacking else fields["expires_at"]
    fields["expires_at"] = None if expires is None else _timestamp(expires, f"{where}: expires_at")


def _directions(path: Path, dim: int) -> list[tuple[str, bytes, dict[str, Any], datetime]]:
    out = []
    for number, doc in _lines(path):
        where = f"snapshot directions.jsonl line {number}"
        name, definition = doc.get("name"), doc.get("definition") or {}
        if not isinstance(name, str) or not isinstance(definition, dict):
            raise InvalidInput(f"{where}: needs a name and an object definition")
        try:
            vector = base64.b64decode(str(doc.get("vector")), validate=True)
        except ValueError as e:
            raise InvalidInput(f"{where}: vector is not base64: {e}") from e
        if len(vector) != 4 * dim or not np.isfinite(np.frombuffer(vector, "<f4")).all():
            raise InvalidInput(f"{where}: vector is not {dim} finite float32 values")
        out.append((name, vector, definition, _timestamp(doc.get("created_at"), where)))
    return out


def _adapters(path: Path) -> list[dict[str, Any]]:
    out = []
    for number, doc in _lines(path):
        where = f"snapshot adapters.jsonl line {number}"
        raw_dims = [doc.get("dim_in"), doc.get("dim_out")]
        dims = [d for d in raw_dims if isinstance(d, int) and not isinstance(d, bool)]
        if len(dims) != 2 or not all(1 <= d <= 65_536 for d in dims):
            raise InvalidInput(f"{where}: dim_in and dim_out must be 1-65536")
        fingerprints = [doc.get("source_fingerprint"), doc.get("target_fingerprint")]
        if not all(isinstance(f, str) and 1 <= len(f) <= 64 for f in fingerprints):
            raise InvalidInput(f"{where}: needs source and target fingerprints")
        if doc.get("kind") not in ("procrustes", "affine"):
            raise InvalidInput(f"{where}: kind must be procrustes or affine")
        source_model, recall, fitted_on = (
            doc.get("source_model"),
            doc.get("recall_at_10"),
            doc.get("fitted_on"),
        )
        if source_model is not None and not isinstance(source_model, str):
            raise InvalidInput(f"{where}: source_model must be a string or null")
        if recall is not None and not (isinstance(recall, int | float) and 0 <= recall <= 1):
            raise InvalidInput(f"{where}: recall_at_10 must be in [0, 1] or null")
        if not isinstance(fitted_on, int) or isinstance(fitted_on, bool) or fitted_on < 0:
            raise InvalidInput(f"{where}: fitted_on must be a count")
        arrays = {}
        for key, size in (("matrix", dims[0] * dims[1]), ("bias", dims[1])):
            try:
                raw = base64.b64decode(str(doc.get(key)), validate=True)
            except ValueError as e:
                raise InvalidInput(f"{where}: {key} is not base64: {e}") from e
            if len(raw) != 4 * size or not np.isfinite(np.frombuffer(raw, "<f4")).all():
                raise InvalidInput(f"{where}: {key} is not {size} finite float32 values")
            arrays[key] = raw
        out.append(
            {
                "source_model": source_model,
                "source_fingerprint": fingerprints[0],
                "target_fingerprint": fingerprints[1],
                "kind": doc["kind"],
                "dim_in": dims[0],
                "dim_out": dims[1],
                **arrays,
                "recall_at_10": None if recall is None else float(recall),
                "fitted_on": fitted_on,
                "created_at": _timestamp(doc.get("created_at"), where),
            }
        )
    return out
