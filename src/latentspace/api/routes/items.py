"""Items: JSON upsert, multipart image upload, get, list, patch metadata, delete, image."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from latentspace.api.convert import (
    duplicate_policy,
    form_ids,
    form_metadata,
    item_image_bytes,
    item_public,
    item_status,
    json_response,
    upload_bytes,
)
from latentspace.api.deps import AuthorizedRoute, ReadDep, ServiceDep, WriteDep
from latentspace.api.errors import NOT_FOUND, ApiError, all_failed, problem_responses
from latentspace.api.payload import (
    NPY_MEDIA_TYPE,
    form_columns,
    json_vectors,
    matrix_from_npy,
    require_file,
)
from latentspace.api.schemas import (
    HashLookup,
    HashLookupResult,
    ItemList,
    ItemPatch,
    ItemPublic,
    ItemsUpsert,
    ItemsUpsertResult,
    VectorsUpsert,
)
from latentspace.service import ItemResult, NewItem, collections, items, replica
from latentspace.service.replica import SEQ_HEADER

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/collections/{name}",
    tags=["items"],
    route_class=AuthorizedRoute,
    responses=NOT_FOUND,
)

_BATCH_DOC = (
    "Answers 200 when every item was stored, 207 when some failed (each failure has its "
    "problem in `items[i].error`), and a problem (422 or 413) when all failed, with the "
    "per-item statuses in `errors`."
)
_BATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    207: {"model": ItemsUpsertResult, "description": "Some items failed"},
    # the collection moved to another model while the write was prepared (a migration)
    **problem_responses(409),
}


def _answer(request: Request, results: list[ItemResult], seq: int) -> JSONResponse:
    statuses = [item_status(r) for r in results]
    count = {
        s: sum(1 for r in results if r.status == s)
        for s in ("created", "updated", "unchanged", "skipped", "error")
    }
    body = ItemsUpsertResult(
        items=statuses,
        created=count["created"],
        updated=count["updated"],
        unchanged=count["unchanged"],
        skipped=count["skipped"],
        errors=count["error"],
        seq=seq,
    )
    errors = [r.error for r in results if r.error is not None]
    if results and len(errors) == len(results):
        detail = (
            f"no item was stored; item {results[0].index}: {errors[0]}"
            if len(results) == 1
            else f"none of the {len(results)} items was stored; first error: {errors[0]}"
        )
        return all_failed(request, errors, detail, [s.model_dump(mode="json") for s in statuses])
    code = 207 if count["error"] else 200
    return JSONResponse(
        body.model_dump(mode="json"), status_code=code, headers={SEQ_HEADER: str(seq)}
    )


@router.post(
    "/items",
    dependencies=[WriteDep],
    response_model=ItemsUpsertResult,
    responses=_BATCH_RESPONSES,
    summary="Upsert items (text, base64 image or vector)",
    description="Upsert by id; each item reports created / updated / unchanged / skipped / "
    "error and, when its content duplicates a stored item or an earlier item of the batch, "
    "`duplicate_of` (tier and evidence). `on_duplicate` stores, skips or rejects (409, "
    "nothing written) duplicates per tier. " + _BATCH_DOC,
)
def upsert_items(request: Request, name: str, body: ItemsUpsert, ctx: ServiceDep) -> JSONResponse:
    new = []
    for i, item in enumerate(body.items):
        image, unreadable = item_image_bytes(item.image, i)
        new.append(
            NewItem(
                id=item.id,
                text=item.text,
                image=image,
                vector=item.vector,
                metadata=item.metadata,
                uri=item.uri,
                expires_at=item.expires_at,
                unreadable=unreadable,
            )
        )
    policy = duplicate_policy(body.on_duplicate)
    results = items.ingest(ctx, name, new, on_duplicate=policy)
    return _answer(request, results, replica.written_seq(ctx, name))


@router.post(
    "/images",
    dependencies=[WriteDep],
    response_model=ItemsUpsertResult,
    responses=_BATCH_RESPONSES,
    summary="Upload image files (multipart)",
    description="Many `files` in one multipart request. `metadata` is a JSON object for every "
    "file or a JSON list with one object per file; `ids` a JSON list of ids (default: each "
    "file's name, folders written `:` as in `photos:2024:beach.jpg`, or its sha256 when the "
    "name is no usable id). The file name is kept as the item's `uri` and metadata "
    "`filename`; the sha256 of its bytes is the item's `sha256` either way. `on_duplicate` "
    "as in `POST …/items`. " + _BATCH_DOC,
)
def upload_images(
    request: Request,
    name: str,
    ctx: ServiceDep,
    files: Annotated[list[UploadFile], File(description="Image files.", min_length=1)],
    metadata: Annotated[str | None, Form(description="JSON object or list.")] = None,
    ids: Annotated[str | None, Form(description="JSON list of ids.")] = None,
    on_duplicate: Annotated[
        str | None,
        Form(description="`store`, `skip` or `reject`, or a JSON object of them per tier."),
    ] = None,
) -> JSONResponse:
    metas, given_ids = form_metadata(metadata, len(files)), form_ids(ids, len(files))
    policy = duplicate_policy(on_duplicate)
    new = []
    for i, (upload, meta, item_id) in enumerate(zip(files, metas, given_ids, strict=True)):
        filename = upload.filename or None
        data, too_large = upload_bytes(upload, ctx.settings.limits, name=filename or f"file {i}")
        new.append(
            NewItem(
                id=item_id if item_id is not None else items.file_id(filename),
                image=data if data is not None else b"",
                metadata={**({"filename": filename} if filename else {}), **meta},
                uri=filename,
                unreadable=too_large,
            )
        )
    results = items.ingest(ctx, name, new, on_duplicate=policy)
    return _answer(request, results, replica.written_seq(ctx, name))


_VECTORS_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{VectorsUpsert.__name__}"}},
        NPY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["vectors"],
                "properties": {
                    "vectors": {"type": "string", "format": "binary"},
                    "ids": {"type": "string", "description": "JSON list of one id per row."},
                    "metadata": {"type": "string", "description": "JSON object or list."},
                    "uris": {"type": "string", "description": "JSON list of one uri per row."},
                },
            }
        },
    },
}


@router.post(
    "/vectors",
    dependencies=[WriteDep],
    response_model=ItemsUpsertResult,
    responses={**_BATCH_RESPONSES, **problem_responses(415)},
    openapi_extra={"requestBody": _VECTORS_BODY},
    summary="Bulk-upsert raw vectors (binary payloads)",
    description="Rows of float32 without JSON number parsing: a JSON body with `vectors` as "
    "base64 (plus `ids`, `metadata`, `uris` columns), a raw `application/x-npy` body (ids "
    "are then the rows' content sha256), or multipart with a `vectors` .npy file and JSON "
    "form fields `ids`, `metadata`, `uris`. Each row is an item, as in `POST …/items`, "
    "except that rows are checked for duplicates only when `on_duplicate` is given (`store` "
    "reports them in `duplicate_of`): the check searches the index once per row. " + _BATCH_DOC,
)
async def upsert_vectors(
    request: Request,
    name: str,
    ctx: ServiceDep,
    on_duplicate: Annotated[
        str | None,
        Query(
            description="`store`, `skip` or `reject`, or a JSON object of them per tier; "
            "absent: no duplicate check.",
            max_length=200,
        ),
    ] = None,
) -> JSONResponse:
    policy = duplicate_policy(on_duplicate)
    dim = (await run_in_threadpool(collections.get, ctx, name)).dim
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    columns: dict[str, Any] = {}
    if media == "application/json":
        vectors, columns = await run_in_threadpool(json_vectors, await request.body(), dim)
    elif media == NPY_MEDIA_TYPE:
        vectors = await run_in_threadpool(matrix_from_npy, await request.body(), dim)
    elif media == "multipart/form-data":
        async with request.form(max_files=1, max_fields=8) as form:
            upload = require_file(form.get("vectors"))
            vectors = await run_in_threadpool(matrix_from_npy, await upload.read(), dim)
            columns = form_columns({k: form.get(k) for k in ("ids", "metadata", "uris")})
    else:
        raise ApiError(
            415,
            "unsupported-media-type",
            f"send application/json, {NPY_MEDIA_TYPE} or multipart/form-data, not "
            f"{media or 'no content type'}",
        )
    results = await run_in_threadpool(
        partial(items.ingest_vectors, on_duplicate=policy), ctx, name, vectors, **columns
    )
    return _answer(request, results, await run_in_threadpool(replica.written_seq, ctx, name))


@router.post(
    "/items/lookup",
    dependencies=[ReadDep],
    summary="Which of these content hashes are stored?",
    description="Lets a client skip files it already uploaded (a resumable ingest): send "
    "the sha256 of each file's bytes (of a text's UTF-8), get back the ids holding each.",
)
def lookup_hashes(name: str, body: HashLookup, ctx: ServiceDep) -> HashLookupResult:
    return HashLookupResult(found=items.lookup_hashes(ctx, name, body.sha256))


@router.get("/items", dependencies=[ReadDep], summary="List items (keyset pages)")
def list_items(
    name: str,
    ctx: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int, Query(ge=0, le=2**62, description="`next` of the previous page.")] = 0,
) -> ItemList:
    page, cursor = items.list_page(ctx, name, limit=limit, after=after)
    return ItemList(items=[item_public(r) for r in page], next=cursor)


@router.get("/items/{item_id}", dependencies=[ReadDep], summary="Get an item")
def get_item(name: str, item_id: str, ctx: ServiceDep, include_vector: bool = False) -> ItemPublic:
    row, vector = items.get(ctx, name, item_id, with_vector=include_vector)
    return item_public(row, vector)


@router.patch(
    "/items/{item_id}",
    dependencies=[WriteDep],
    response_model=ItemPublic,
    summary="Update an item's metadata",
)
def patch_item(name: str, item_id: str, body: ItemPatch, ctx: ServiceDep) -> Response:
    """Merge keys into the metadata (null removes a key); the vector is not touched."""
    row = items.update_metadata(ctx, name, item_id, body.metadata)
    return json_response(
        item_public(row), headers={SEQ_HEADER: str(replica.written_seq(ctx, name))}
    )


@router.delete(
    "/items/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[WriteDep],
    summary="Delete an item",
)
def delete_item(name: str, item_id: str, ctx: ServiceDep) -> Response:
    items.delete_one(ctx, name, item_id)
    seq = str(replica.written_seq(ctx, name))
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers={SEQ_HEADER: seq})


@router.get(
    "/items/{item_id}/image",
    dependencies=[ReadDep],
    response_class=Response,
    summary="The stored original of an image item",
    responses={200: {"content": {"image/*": {}}}},
)
def item_image(name: str, item_id: str, ctx: ServiceDep) -> Response:
    image = items.stored_image(ctx, name, item_id)
    return Response(
        image.data, media_type=image.media_type, headers={"Cache-Control": "max-age=3600"}
    )
