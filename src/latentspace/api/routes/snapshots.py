"""Snapshots: a collection into one file, and a file back into a collection (downloaded,
in the server's snapshot folder, or in S3-compatible storage)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, status
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from latentspace.api.convert import collection_public
from latentspace.api.deps import (
    AdminDep,
    AuthorizedRoute,
    GrantDep,
    ServiceDep,
    require_unscoped,
)
from latentspace.api.errors import ApiError, problem_responses
from latentspace.api.payload import validated_json
from latentspace.api.schemas import (
    CollectionPublic,
    SnapshotRequest,
    SnapshotRestore,
    SnapshotSaved,
    SnapshotUploaded,
)
from latentspace.service import backups, snapshots

__all__ = ["RESTORE_PATHS", "SNAPSHOT_MEDIA_TYPE", "router"]

SNAPSHOT_MEDIA_TYPE = "application/x-tar"
# The upload route, whose bodies have their own size limit.
RESTORE_PATHS = re.compile(r"^/v1/collections/[^/]+/restore$")

router = APIRouter(prefix="/v1/collections", tags=["snapshots"], route_class=AuthorizedRoute)


_SCHEMAS = "#/components/schemas/"
# Optional, and JSON null means the same as no body (FastAPI reads both as None).
_SNAPSHOT_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {"anyOf": [{"$ref": _SCHEMAS + SnapshotRequest.__name__}, {"type": "null"}]}
        }
    },
}


@router.post(
    "/{name}/snapshot",
    dependencies=[AdminDep],
    summary="Snapshot a collection into one file",
    response_model=None,
    openapi_extra={"requestBody": _SNAPSHOT_BODY},
    responses={
        200: {
            "description": "The snapshot file (a tar: manifest.json first).",
            "content": {SNAPSHOT_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
        201: {
            "model": SnapshotSaved | SnapshotUploaded,
            "description": "Saved in the server's snapshot folder, or uploaded to `target`.",
        },
        **problem_responses(404, 503),
    },
)
def snapshot_collection(
    name: str,
    ctx: ServiceDep,
    grant: GrantDep,
    body: Annotated[SnapshotRequest | None, Body()] = None,
) -> FileResponse | JSONResponse:
    """Every live item (fields, timestamps, vector), the directions and the collection's
    settings, with a manifest of counts, schema revision and the sha256 of every part. The
    collection's writes wait while it is read; searches go on. Without a ``file`` or a
    ``target`` the snapshot is the response body; with a ``file`` it is saved in the
    server's snapshot folder; with a ``target`` (``s3://bucket/key``) it is uploaded to
    S3-compatible storage (the server's ``LATENTSPACE_BACKUP__`` settings: a missing bucket
    is a 404, refused credentials or an unreachable store a 503 saying why). ``originals``
    (by default when the collection holds images) adds each image's stored original, so a
    restore elsewhere can serve, re-encode and migrate them."""
    originals = body.originals if body is not None else None
    if body is not None and body.target is not None:
        require_unscoped(grant, "a snapshot to the server's bucket (target)")
        sent = backups.upload(ctx, name, body.target, originals=originals)
        uploaded = SnapshotUploaded(target=sent.target, bytes=sent.bytes, manifest=sent.manifest)
        return JSONResponse(uploaded.model_dump(), status_code=status.HTTP_201_CREATED)
    if body is not None and body.file is not None:
        require_unscoped(grant, "a snapshot into the server's snapshot folder (file)")
        out, manifest = snapshots.take_to_folder(ctx, name, body.file, originals=originals)
        saved = SnapshotSaved(file=out.name, bytes=out.stat().st_size, manifest=manifest)
        return JSONResponse(saved.model_dump(), status_code=status.HTTP_201_CREATED)
    path = snapshots.take_temporary(ctx, name, originals=originals)
    return FileResponse(
        path,
        media_type=SNAPSHOT_MEDIA_TYPE,
        filename=f"{name}.lsnap",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


_RESTORE_BODY = {
    "required": True,
    "content": {
        SNAPSHOT_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        "application/json": {
            "schema": {"$ref": f"#/components/schemas/{SnapshotRestore.__name__}"}
        },
    },
}


@router.post(
    "/{name}/restore",
    status_code=status.HTTP_201_CREATED,
    dependencies=[AdminDep],
    summary="Restore a collection from a snapshot",
    openapi_extra={"requestBody": _RESTORE_BODY},
    responses=problem_responses(404, 409, 413, 415, 422),
    response_model=CollectionPublic,
)
async def restore_collection(
    request: Request,
    name: str,
    ctx: ServiceDep,
    grant: GrantDep,
    replace: Annotated[
        bool, Query(description="Replace a collection of that name (one transaction).")
    ] = False,
) -> CollectionPublic:
    """Restore a snapshot as collection ``name`` (its own name or another): upload the
    file (`application/x-tar`, `replace` as a query parameter), or name one in JSON: a
    ``file`` in the server's snapshot folder or a ``source`` in S3-compatible storage
    (``s3://bucket/key``, downloaded first). The whole file is verified first (every
    part's size and sha256, counts, fields, vectors); a bad one is refused and changes
    nothing. The collection appears in one transaction (with ``replace``, the old one goes
    in the same one), its indexes built from the restored vectors."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json":
        body = validated_json(SnapshotRestore, await request.body())
        if body.source is not None:
            require_unscoped(grant, "a restore from the server's bucket (source)")
            stats = await run_in_threadpool(
                backups.restore, ctx, body.source, name=name, replace=body.replace
            )
        else:  # the schema holds exactly one of the two
            require_unscoped(grant, "a restore from the server's snapshot folder (file)")
            stats = await run_in_threadpool(
                snapshots.restore_file, ctx, body.file or "", name=name, replace=body.replace
            )
    elif media == SNAPSHOT_MEDIA_TYPE:
        path = await _receive(request, snapshots.scratch_dir(ctx))
        try:
            stats = await run_in_threadpool(
                snapshots.restore, ctx, path, name=name, replace=replace
            )
        finally:
            path.unlink(missing_ok=True)
    else:
        raise ApiError(
            415,
            "unsupported-media-type",
            f"send a snapshot as {SNAPSHOT_MEDIA_TYPE}, or JSON naming a file in the "
            f"server's snapshot folder or an s3:// source, not {media or 'no content type'}",
        )
    return collection_public(stats)


async def _receive(request: Request, folder: Path) -> Path:
    # The upload goes to disk as it arrives (the size limit is counted on the way in).
    fd, tmp = tempfile.mkstemp(prefix="upload.", suffix=".lsnap", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                await run_in_threadpool(f.write, chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)
