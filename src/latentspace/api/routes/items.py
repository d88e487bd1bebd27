"""Items: JSON upsert, multipart image upload, get, list, patch metadata, delete, image."""

from __future__ import annotations

import io
import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from latentspace.api.deps import AdminDep, AuthorizedRoute, ReadDep, SpaceDep
from latentspace.api.errors import problem_for, problem_response
from latentspace.api.routes.common import decode_base64, form_json, item_public, problem_of
from latentspace.api.schemas import (
    DuplicateOf,
    ItemList,
    ItemPatch,
    ItemPublic,
    ItemStatus,
    ItemsUpsert,
    ItemsUpsertResult,
)
from latentspace.errors import InvalidInput, LimitExceeded, NotFound
from latentspace.service import ItemResult, NewItem
from latentspace.service.ingest import ingest, read_blob

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections/{name}", tags=["items"], route_class=AuthorizedRoute)

_BATCH_DOC = (
    "Answers 200 when every item was stored, 207 when some failed (each failure has its "
    "problem in `items[i].error`), and a problem (422 or 413) when all failed, with the "
    "per-item statuses in `errors`."
)
_BATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    207: {"model": ItemsUpsertResult, "description": "Some items failed"},
}


def _answer(request: Request, results: list[ItemResult]) -> JSONResponse:
    statuses = []
    for r in results:
        dup = r.duplicate_of
        statuses.append(
            ItemStatus(
                index=r.index,
                id=r.id,
                status=r.status,  # type: ignore[arg-type]
                error=problem_of(r.error) if r.error is not None else None,
                duplicate_of=DuplicateOf(id=dup.id, kind=dup.kind, score=dup.score)  # type: ignore[arg-type]
                if dup is not None
                else None,
            )
        )
    count = {
        s: sum(1 for r in results if r.status == s)
        for s in ("created", "updated", "unchanged", "error")
    }
    body = ItemsUpsertResult(
        items=statuses,
        created=count["created"],
        updated=count["updated"],
        unchanged=count["unchanged"],
        errors=count["error"],
    )
    if results and count["error"] == len(results):
        first = next(r.error for r in results if r.error is not None)
        assert first is not None
        status_, kind = problem_for(first)
        if all(problem_for(r.error)[1] == kind for r in results if r.error is not None):
            code = status_
        else:
            code, kind = 422, "invalid-input"
        return problem_response(
            request,
            code,
            kind,
            f"no item was stored; item {results[0].index}: {first}"
            if len(results) == 1
            else f"none of the {len(results)} items was stored; first error: {first}",
            errors_=[s.model_dump(mode="json") for s in statuses],
        )
    code = 207 if count["error"] else 200
    return JSONResponse(body.model_dump(mode="json"), status_code=code)


@router.post(
    "/items",
    dependencies=[AdminDep],
    response_model=ItemsUpsertResult,
    responses=_BATCH_RESPONSES,
    summary="Upsert items (text, base64 image or vector)",
    description="Upsert by id; each item reports created / updated / unchanged / error and, "
    "when its content duplicates a stored item, `duplicate_of`. " + _BATCH_DOC,
)
def upsert_items(request: Request, name: str, body: ItemsUpsert, space: SpaceDep) -> JSONResponse:
    items, early = [], {}
    for i, item in enumerate(body.items):
        try:
            image = (
                decode_base64(item.image, name=f"item {i} image")
                if item.image is not None
                else None
            )
        except InvalidInput as e:
            early[i] = e
            image = None
        items.append(
            NewItem(
                id=item.id,
                text=item.text,
                image=image,
                vector=item.vector,
                metadata=item.metadata,
                uri=item.uri,
            )
        )
    keep = [i for i in range(len(items)) if i not in early]
    done = ingest(space, name, [items[i] for i in keep]) if keep else []
    space.collection(name)  # a bad collection is a 404 even when every image was bad
    results: dict[int, ItemResult] = {
        keep[j]: ItemResult(keep[j], r.id, r.status, r.error, r.duplicate_of)
        for j, r in enumerate(done)
    }
    for i, error in early.items():
        results[i] = ItemResult(i, body.items[i].id, "error", error)
    return _answer(request, [results[i] for i in range(len(items))])


def _metadata_for(raw: str | None, count: int) -> list[dict[str, Any]]:
    if raw is None or not raw.strip():
        return [{} for _ in range(count)]
    value = form_json(raw, field="metadata")
    if isinstance(value, dict):
        return [dict(value) for _ in range(count)]
    if isinstance(value, list) and len(value) == count and all(isinstance(v, dict) for v in value):
        return value
    raise InvalidInput(
        "metadata must be one JSON object (for every file) or a list of one object per file"
    )


def _ids_for(raw: str | None, count: int) -> list[str | None]:
    if raw is None or not raw.strip():
        return [None] * count
    value = form_json(raw, field="ids")
    if not (
        isinstance(value, list) and len(value) == count and all(isinstance(v, str) for v in value)
    ):
        raise InvalidInput("ids must be a JSON list of one string per file")
    return value


@router.post(
    "/images",
    dependencies=[AdminDep],
    response_model=ItemsUpsertResult,
    responses=_BATCH_RESPONSES,
    summary="Upload image files (multipart)",
    description="Many `files` in one multipart request. `metadata` is a JSON object for every "
    "file or a JSON list with one object per file; `ids` a JSON list of ids (default: each "
    "file's sha256). The file name is kept as the item's `uri` and metadata `filename`. "
    + _BATCH_DOC,
)
def upload_images(
    request: Request,
    name: str,
    space: SpaceDep,
    files: Annotated[list[UploadFile], File(description="Image files.")],
    metadata: Annotated[str | None, Form(description="JSON object or list.")] = None,
    ids: Annotated[str | None, Form(description="JSON list of ids.")] = None,
) -> JSONResponse:
    limits = space.settings.limits
    if len(files) > limits.max_batch:
        raise LimitExceeded(f"{len(files)} files, over the batch limit of {limits.max_batch}")
    metas, given_ids = _metadata_for(metadata, len(files)), _ids_for(ids, len(files))
    items = []
    for upload, meta, item_id in zip(files, metas, given_ids, strict=True):
        data = upload.file.read(limits.max_image_bytes + 1)
        filename = upload.filename or None
        items.append(
            NewItem(
                id=item_id,
                image=data,
                metadata={**({"filename": filename} if filename else {}), **meta},
                uri=filename,
            )
        )
    return _answer(request, ingest(space, name, items))


class HashLookup(BaseModel):
    """Content hashes to look up."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"sha256": ["ab" * 32]}]}
    )

    sha256: list[str] = Field(min_length=1)


class HashLookupResult(BaseModel):
    """The ids of live items holding each hash that is stored (absent hashes are left out)."""

    found: dict[str, list[str]]


@router.post(
    "/items/lookup",
    dependencies=[ReadDep],
    summary="Which of these content hashes are stored?",
    description="Lets a client skip files it already uploaded (a resumable ingest): send "
    "the sha256 of each file's bytes (of a text's UTF-8), get back the ids holding each.",
)
def lookup_hashes(name: str, body: HashLookup, space: SpaceDep) -> HashLookupResult:
    limit = space.settings.limits.max_batch
    if len(body.sha256) > limit:
        raise LimitExceeded(f"{len(body.sha256)} hashes, over the batch limit of {limit}")
    return HashLookupResult(found=space.items_with_hashes(name, body.sha256))


@router.get("/items", dependencies=[ReadDep], summary="List items (keyset pages)")
def list_items(
    name: str,
    space: SpaceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int, Query(ge=0, le=2**62, description="`next` of the previous page.")] = 0,
) -> ItemList:
    rows = space.list_items(name, limit=limit + 1, after=after)
    page = rows[:limit]
    return ItemList(
        items=[item_public(r) for r in page], next=page[-1].id if len(rows) > limit else None
    )


@router.get("/items/{item_id}", dependencies=[ReadDep], summary="Get an item")
def get_item(name: str, item_id: str, space: SpaceDep, include_vector: bool = False) -> ItemPublic:
    row, vector = space.get_item(name, item_id)
    return item_public(row, vector if include_vector else None)


@router.patch("/items/{item_id}", dependencies=[AdminDep], summary="Update an item's metadata")
def patch_item(name: str, item_id: str, body: ItemPatch, space: SpaceDep) -> ItemPublic:
    """Merge keys into the metadata (null removes a key); the vector is not touched."""
    return item_public(space.update_metadata(name, item_id, body.metadata))


@router.delete(
    "/items/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[AdminDep],
    summary="Delete an item",
)
def delete_item(name: str, item_id: str, space: SpaceDep) -> Response:
    if not space.delete(name, [item_id]):
        space.collection(name)
        raise NotFound(f"item {item_id!r} not found in collection {name!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/items/{item_id}/image",
    dependencies=[ReadDep],
    response_class=Response,
    summary="The stored original of an image item",
    responses={200: {"content": {"image/*": {}}}},
)
def item_image(name: str, item_id: str, space: SpaceDep) -> Response:
    row, _ = space.get_item(name, item_id)
    data = read_blob(space.settings.data_dir, row.sha256) if row.kind == "image" else None
    if data is None:
        raise NotFound(f"item {item_id!r} has no stored image")
    return Response(
        data, media_type=_media_type(data, row.uri), headers={"Cache-Control": "max-age=3600"}
    )


def _media_type(data: bytes, uri: str | None) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "", "application/octet-stream")
    except OSError:  # includes UnidentifiedImageError
        guess, _ = mimetypes.guess_type(uri or "")
        return guess or "application/octet-stream"
