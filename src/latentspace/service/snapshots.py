"""Snapshots: a collection into one file, and a file back into a collection.

:func:`take` writes every live item, its vector and the collection's directions while the
collection's writes wait (so the file is one consistent moment; searches go on), then
checksums each part into the manifest. :func:`restore` verifies the whole file first (see
``service.snapshot_file``), then creates the collection, its items, vectors, oplog and
directions in one transaction: until it commits nothing is visible, and a failure leaves
nothing behind. With ``replace`` the old collection of that name goes in the same
transaction, so readers see the old one or the new one. The indexes are built from SQL
after the commit, as for any collection that has no saved index.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentspace.atomic import fsync_dir
from latentspace.errors import EncoderError, InvalidInput, NotFound
from latentspace.migrations import head_revision
from latentspace.service import collections, tuning
from latentspace.service.collections import CollectionStats
from latentspace.service.context import Context
from latentspace.service.intake import (
    DamagedOriginal,
    blob_path,
    check_fields,
    read_blob,
    write_blob,
)
from latentspace.store import migrate as migrate_repo
from latentspace.store import repository as repo
from latentspace.store.directions import list_directions
from latentspace.store.snapshot_file import (
    Snapshot,
    read_manifest,
    read_snapshot,
    write_snapshot,
)
from latentspace.store.snapshots import insert_restored, iter_snapshot_items
from latentspace.store.tables import AdapterRow, CollectionRow, as_utc, utcnow

__all__ = [
    "restore",
    "restore_file",
    "scratch_dir",
    "take",
    "take_temporary",
    "take_to_folder",
]

logger = logging.getLogger(__name__)


def scratch_dir(ctx: Context) -> Path:
    """Where snapshots are assembled and uploads land (inside the data directory, so a
    finished file is renamed into place, never copied across file systems)."""
    path = ctx.settings.data_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def take(ctx: Context, name: str, out: Path, *, originals: bool | None = None) -> dict[str, object]:
    """Write a snapshot of collection ``name`` to the file ``out`` (atomically); its manifest.
    With ``originals`` (by default when it holds images) it carries the stored original of
    each image whose file is there and whole (a damaged one is left out and named in
    ``/readyz``).

    Raises:
        NotFound: no such collection.
        CorruptVector: a stored vector fails its checksum.
    """
    collection = collections.get(ctx, name)
    with tempfile.TemporaryDirectory(dir=scratch_dir(ctx)) as tmp:
        parts = Path(tmp)
        images: set[str] = set()
        with ctx.live.writing(collection):
            counts = _write_parts(ctx, collection, parts, images)
        kept = _originals(ctx, collection, images) if originals is not False else []
        # Assembled beside its destination and renamed into place: a crash leaves no
        # half-written snapshot under the final name.
        partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
        try:
            manifest = write_snapshot(
                partial,
                parts,
                collection=_collection_doc(collection),
                counts=counts,
                revision=head_revision() or "",
                originals=kept,
            )
            with partial.open("rb+") as f:
                os.fsync(f.fileno())
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
        fsync_dir(out.parent)
    logger.info("collection %s: snapshot of %d items to %s", name, counts["items"], out)
    return manifest


def _collection_doc(row: CollectionRow) -> dict[str, object]:
    return {
        "name": row.name,
        "model": row.model,
        "dim": row.dim,
        "fingerprint": row.fingerprint,
        "metric": row.metric,
        "index_kind": row.index_kind,
        "index_params": row.index_params or {},
        "keyword": row.keyword,
        "ttl_seconds": row.ttl_seconds,
        "created_at": as_utc(row.created_at).isoformat(),
    }


def _originals(ctx: Context, collection: CollectionRow, images: set[str]) -> list[tuple[str, Path]]:
    # (sha256, file) of each image's stored original that is there and whole
    kept = []
    for sha256 in sorted(images):
        try:
            if read_blob(ctx.settings.data_dir, sha256) is not None:
                kept.append((sha256, blob_path(ctx.settings.data_dir, sha256)))
        except DamagedOriginal as e:
            logger.error("collection %s: a snapshot leaves out %s", collection.name, e)
    return kept


def _write_parts(
    ctx: Context, collection: CollectionRow, parts: Path, images: set[str]
) -> dict[str, int]:
    # ``images`` gets the sha256 of each image item written
    count = 0
    with (
        ctx.sessions() as session,
        (parts / "items.jsonl").open("w", encoding="utf-8") as items,
        (parts / "vectors.f32").open("wb") as vectors,
    ):
        if session.get_bind().dialect.name == "postgresql":
            # One view of the data for every page, whatever commits meanwhile elsewhere.
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        for page in iter_snapshot_items(session=session, collection=collection):
            for item in page:
                if item.fields["kind"] == "image":
                    images.add(item.fields["sha256"])
                doc = {
                    "id": item.external_id,
                    **item.fields,
                    "created_at": item.created_at.isoformat(),
                    "updated_at": item.updated_at.isoformat(),
                }
                items.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
            vectors.write(b"".join(item.vector for item in page))
            count += len(page)
        rows = list_directions(session=session, collection=collection)
        adapters = migrate_repo.adapters_of(session=session, collection=collection)
        with (parts / "adapters.jsonl").open("w", encoding="utf-8") as out:
            for adapter in adapters:
                out.write(json.dumps(_adapter_doc(adapter), separators=(",", ":")) + "\n")
    with (parts / "directions.jsonl").open("w", encoding="utf-8") as out:
        for row in rows:
            doc = {
                "name": row.name,
                "definition": row.definition,
                "vector": base64.b64encode(row.vector).decode(),
                "created_at": as_utc(row.created_at).isoformat(),
            }
            out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    return {"items": count, "directions": len(rows), "adapters": len(adapters)}


def _adapter_doc(row: AdapterRow) -> dict[str, Any]:
    return {
        "source_model": row.source_model,
        "source_fingerprint": row.source_fingerprint,
        "target_fingerprint": row.target_fingerprint,
        "kind": row.kind,
        "dim_in": row.dim_in,
        "dim_out": row.dim_out,
        "matrix": base64.b64encode(row.matrix).decode(),
        "bias": base64.b64encode(row.bias).decode(),
        "recall_at_10": row.recall_at_10,
        "fitted_on": row.fitted_on,
        "created_at": as_utc(row.created_at).isoformat(),
    }


def restore(
    ctx: Context, source: Path, *, name: str | None = None, replace: bool = False
) -> CollectionStats:
    """Restore the snapshot in file ``source`` as collection ``name`` (default: its own).

    Raises:
        InvalidInput: the file is not a sound snapshot (nothing is changed), or the model it
            names makes vectors of another space on this server.
        Conflict: a collection of that name exists and ``replace`` is false.

    The stored originals it carries are written back under ``data_dir/blobs``.
    """
    with tempfile.TemporaryDirectory(dir=scratch_dir(ctx)) as tmp:
        snapshot = read_snapshot(source, Path(tmp))
        _check_model(ctx, snapshot)
        _check_items(ctx, snapshot)
        for sha256 in snapshot.originals:  # content-addressed: nothing else names them
            data = (Path(tmp) / "originals" / sha256).read_bytes()
            write_blob(ctx.settings.data_dir, sha256, data)
    target = name or snapshot.collection["name"]
    fields = snapshot.collection
    # held to what creating a collection takes: a forged manifest must not build an index
    # FAISS aborts on (hnsw m = 0) or that fails every search (ivf nlist = 0)
    index_params = tuning.checked_codes(
        dim=fields["dim"],
        metric=fields["metric"],
        index=fields["index_kind"],
        params=fields["index_params"],
    )
    old: CollectionRow | None = None
    with ctx.sessions.begin() as session:
        if replace:
            try:
                old = repo.delete_collection(session=session, name=target)
            except NotFound:
                old = None
        row = repo.create_collection(
            session=session,
            name=target,
            model=fields["model"],
            dim=fields["dim"],
            fingerprint=fields["fingerprint"],
            metric=fields["metric"],
            index_kind=fields["index_kind"],
            index_params=index_params,
            keyword=collections.checked_keyword(fields["keyword"]),
        )
        row.ttl_seconds = fields["ttl_seconds"]
        insert_restored(
            session=session,
            collection=row,
            items=snapshot.items,
            directions=snapshot.directions,
            now=utcnow(),
        )
        migrate_repo.insert_adapters(session=session, collection=row, adapters=snapshot.adapters)
    if old is not None:
        ctx.live.forget(old)
    logger.info(
        "collection %s restored: %d items, %d directions",
        target,
        len(snapshot.items),
        len(snapshot.directions),
    )
    return collections.stats(ctx, target)


def restore_file(
    ctx: Context,
    file: str,
    *,
    name: str | None = None,
    replace: bool = False,
    covers: Callable[[str], bool] = collections.every,
) -> CollectionStats:
    """Restore a snapshot file of the server's snapshot folder (see :func:`restore`), if it
    is a snapshot of a collection ``covers`` accepts.

    Raises:
        NotFound: no such file there (or a snapshot of a collection beyond ``covers``).
        InvalidInput: the name leaves that folder, or as :func:`restore`.
    """
    path = _in_folder(ctx, file, existing=True)
    if not covers(_snapshot_of(path)):
        raise NotFound(f"no snapshot file {file!r} in {path.parent}")
    return restore(ctx, path, name=name, replace=replace)


def _snapshot_of(path: Path) -> str:
    # the name of the collection a snapshot file holds ("" when the file does not say)
    try:
        name = read_manifest(path)["collection"]["name"]
    except (InvalidInput, KeyError, TypeError):
        return ""
    return name if isinstance(name, str) else ""


def take_to_folder(
    ctx: Context, name: str, file: str, *, originals: bool | None = None
) -> tuple[Path, dict[str, object]]:
    """Snapshot collection ``name`` as ``file`` in the server's snapshot folder; the path and
    the manifest (see :func:`take`)."""
    out = _in_folder(ctx, file, existing=False)
    return out, take(ctx, name, out, originals=originals)


def take_temporary(ctx: Context, name: str, *, originals: bool | None = None) -> Path:
    """Snapshot collection ``name`` into a new scratch file, for the caller to send and
    remove (see :func:`take`)."""
    fd, tmp = tempfile.mkstemp(prefix=f"{name}.", suffix=".lsnap", dir=scratch_dir(ctx))
    os.close(fd)
    try:
        take(ctx, name, Path(tmp), originals=originals)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _in_folder(ctx: Context, file: str, *, existing: bool) -> Path:
    root = ctx.settings.resolved_snapshot_dir()
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    candidate = (root / file).resolve()
    if candidate.parent != root or file.startswith("."):
        raise InvalidInput(f"snapshot file {file!r} must be a plain name in {root}")
    if existing and not candidate.is_file():
        raise NotFound(f"no snapshot file {file!r} in {root}")
    return candidate


def _check_items(ctx: Context, snapshot: Snapshot) -> None:
    # A restored item passes the checks an upsert's does (the manifest's checksums say the
    # file is whole, not that whoever wrote it kept to them).
    limit = ctx.settings.limits
    for item in snapshot.items:
        fields = item.fields
        try:
            check_fields(
                limit,
                external_id=item.external_id,
                text=fields["text"],
                uri=fields["uri"],
                document_id=fields["document_id"],
                metadata=fields["metadata"],
            )
        except InvalidInput as e:
            raise InvalidInput(f"snapshot item {item.external_id!r}: {e}") from None


def _check_model(ctx: Context, snapshot: Snapshot) -> None:
    # Text and image queries must land in the space the vectors live in: a model this
    # server loads under the same name but with other weights would not.
    model = snapshot.collection["model"]
    if model is None:
        return
    try:
        encoder = ctx.live.encoders.get(model)
    except EncoderError:
        logger.warning("restoring a collection of model %s, which this server cannot load", model)
        return
    if encoder.fingerprint != snapshot.collection["fingerprint"]:
        raise InvalidInput(
            f"the snapshot's vectors come from {model!r} with fingerprint "
            f"{snapshot.collection['fingerprint'][:12]}…, but this server's {model!r} has "
            f"{encoder.fingerprint[:12]}…: its queries would land in another space"
        )
