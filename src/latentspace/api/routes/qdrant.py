"""The Qdrant REST API under ``/qdrant``: ``QdrantClient(url=..., prefix="qdrant")`` works
unchanged against the same collections the native API serves.

Answers are Qdrant's ``{"result": ..., "status": "ok", "time": seconds}``; errors are its
``{"status": {"error": message}, "time": 0}`` (``api.errors`` renders every error under
this prefix so). Keys go in ``api-key`` or ``Authorization: Bearer``; reads need a read
key, writes an admin key. What each call maps to: ``service.qdrant_*``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Body, Response
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.routing import Match
from starlette.types import Scope

from latentspace import __version__
from latentspace.api.deps import (
    AdminDep,
    AuthorizedRoute,
    GrantDep,
    ReadDep,
    ServiceDep,
    WriteDep,
)
from latentspace.api.errors import QDRANT_PREFIX
from latentspace.api.lean import inline_when
from latentspace.api.schemas.qdrant import QdrantBody
from latentspace.service import qdrant_collections as coll
from latentspace.service import qdrant_points as points
from latentspace.service import qdrant_search as search

__all__ = ["QDRANT_API_VERSION", "QdrantRoute", "router"]

# The Qdrant REST version this layer answers as (that of the qdrant-client the tests pin):
# qdrant-client warns when the server's minor version is more than one away from its own.
QDRANT_API_VERSION = "1.20.0"


class QdrantRoute(AuthorizedRoute):
    """A Qdrant route; a snapshot file is never called ``recover``: that segment belongs
    to the recover route, so no other route claims it (or offers its methods in ``Allow``)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match != Match.NONE and child.get("path_params", {}).get("file") == "recover":
            return Match.NONE, {}
        return match, child


router = APIRouter(
    prefix=QDRANT_PREFIX,
    tags=["qdrant"],
    route_class=QdrantRoute,
    generate_unique_id_function=lambda route: f"qdrant_{route.name}",
)

JsonBody = Annotated[dict[str, Any] | None, Body()]
# a query for at most this many hits of a warm index runs on the event loop (as natively)
_AT_ONCE_HITS = 100
COLLECTION = "/collections/{name}"
POINTS = COLLECTION + "/points"


def _ok(result: Any, started: float) -> Response:
    body = {"result": result, "status": "ok", "time": time.perf_counter() - started}
    return Response(pydantic_core.to_json(body), media_type="application/json")


def _updated(seq: int, started: float) -> Response:
    return _ok({"operation_id": seq, "status": "completed"}, started)


@router.get("", summary="Qdrant: version", operation_id="qdrant_root")
@router.get("/", include_in_schema=False, operation_id="qdrant_root_slash")
def root() -> Response:
    """Qdrant's version answer; qdrant-client reads it to check compatibility."""
    return JSONResponse(
        {
            "title": f"latentspace {__version__} (Qdrant REST API)",
            "version": QDRANT_API_VERSION,
        }
    )


@router.get(
    "/healthz",
    summary="Qdrant: liveness",
    operation_id="qdrant_healthz",
    response_class=PlainTextResponse,
)
@router.get("/livez", include_in_schema=False, operation_id="qdrant_livez")
@router.get("/readyz", include_in_schema=False, operation_id="qdrant_readyz")
def healthz() -> PlainTextResponse:
    """Qdrant's plain-text health answer (``/readyz`` of the native API says more)."""
    return PlainTextResponse("healthz check passed")


@router.get("/collections", dependencies=[ReadDep], summary="Qdrant: list collections")
def list_collections(ctx: ServiceDep, grant: GrantDep) -> Response:
    started = time.perf_counter()
    return _ok(coll.list_names(ctx, grant.covers), started)


@router.get("/aliases", dependencies=[ReadDep], summary="Qdrant: aliases (none)")
def aliases() -> Response:
    """There are no aliases here: always an empty list."""
    return _ok({"aliases": []}, time.perf_counter())


@router.get(
    COLLECTION + "/aliases", dependencies=[ReadDep], summary="Qdrant: a collection's aliases"
)
def collection_aliases(name: str, ctx: ServiceDep) -> Response:
    """A collection has no aliases here: an empty list (404 without the collection)."""
    started = time.perf_counter()
    coll.info(ctx, name)
    return _ok({"aliases": []}, started)


@router.put(
    COLLECTION,
    dependencies=[AdminDep],
    summary="Qdrant: create a collection",
    responses={409: {"description": "The name is taken."}},
)
def create_collection(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _ok(coll.create(ctx, name, body or {}), started)


@router.get(COLLECTION, dependencies=[ReadDep], summary="Qdrant: a collection's info")
def get_collection(name: str, ctx: ServiceDep) -> Response:
    started = time.perf_counter()
    return _ok(coll.info(ctx, name), started)


@router.patch(COLLECTION, dependencies=[AdminDep], summary="Qdrant: update a collection")
def update_collection(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _ok(coll.update(ctx, name, body or {}), started)


@router.delete(COLLECTION, dependencies=[AdminDep], summary="Qdrant: delete a collection")
def delete_collection(name: str, ctx: ServiceDep) -> Response:
    started = time.perf_counter()
    return _ok(coll.drop(ctx, name), started)


@router.get(COLLECTION + "/exists", dependencies=[ReadDep], summary="Qdrant: collection exists")
def collection_exists(name: str, ctx: ServiceDep) -> Response:
    started = time.perf_counter()
    return _ok(coll.exists(ctx, name), started)


@router.put(POINTS, dependencies=[WriteDep], summary="Qdrant: upsert points")
def upsert_points(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _updated(points.upsert(ctx, name, body or {}), started)


@router.post(POINTS, dependencies=[ReadDep], summary="Qdrant: retrieve points by id")
def retrieve_points(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    body = body or {}
    found = points.retrieve(
        ctx,
        name,
        body.get("ids"),
        body.get("with_payload", True),
        body.get("with_vector", False),
    )
    return _ok(found, started)


@router.post(POINTS + "/delete", dependencies=[WriteDep], summary="Qdrant: delete points")
def delete_points(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _updated(points.delete(ctx, name, body or {}), started)


@router.post(POINTS + "/payload", dependencies=[WriteDep], summary="Qdrant: set payload")
def set_payload(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _updated(points.change_payload(ctx, name, "set", body or {}), started)


@router.put(POINTS + "/payload", dependencies=[WriteDep], summary="Qdrant: overwrite payload")
def overwrite_payload(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _updated(points.change_payload(ctx, name, "overwrite", body or {}), started)


@router.post(
    POINTS + "/payload/delete", dependencies=[WriteDep], summary="Qdrant: delete payload keys"
)
def delete_payload(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _updated(points.change_payload(ctx, name, "delete", body or {}), started)


@router.post(POINTS + "/payload/clear", dependencies=[WriteDep], summary="Qdrant: clear payload")
def clear_payload(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _updated(points.change_payload(ctx, name, "clear", body or {}), started)


@router.post(POINTS + "/scroll", dependencies=[ReadDep], summary="Qdrant: scroll points")
def scroll_points(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _ok(points.scroll(ctx, name, body or {}), started)


@router.post(POINTS + "/count", dependencies=[ReadDep], summary="Qdrant: count points")
def count_points(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _ok(points.count(ctx, name, body or {}), started)


def _query_at_once(name: str, body: QdrantBody, ctx: ServiceDep) -> bool:
    # as the native search: a plain vector query of a warm index runs on the event loop
    return search.at_once(ctx, name, body.fields, most=_AT_ONCE_HITS)


@router.post(POINTS + "/query", dependencies=[ReadDep], summary="Qdrant: query points")
@inline_when(_query_at_once)
def query_points(name: str, body: QdrantBody, ctx: ServiceDep) -> Response:
    started = time.perf_counter()
    return _ok(search.query(ctx, name, body.fields), started)


@router.post(POINTS + "/query/batch", dependencies=[ReadDep], summary="Qdrant: query in batch")
def query_batch(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _ok(search.batch(ctx, name, body or {}), started)


@router.post(POINTS + "/query/groups", dependencies=[ReadDep], summary="Qdrant: query groups")
def query_groups(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _ok(search.query_groups(ctx, name, body or {}), started)


@router.post(POINTS + "/search", dependencies=[ReadDep], summary="Qdrant: search (older API)")
def search_points(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    found = search.query(ctx, name, search.legacy_body(body or {}))
    return _ok(found["points"], started)


@router.post(
    POINTS + "/search/batch", dependencies=[ReadDep], summary="Qdrant: search in batch (older)"
)
def search_batch(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    found = search.batch(ctx, name, search.legacy_batch(body or {}))
    return _ok([answer["points"] for answer in found], started)


@router.post(
    POINTS + "/search/groups", dependencies=[ReadDep], summary="Qdrant: search groups (older)"
)
def search_groups(name: str, ctx: ServiceDep, body: JsonBody = None) -> Response:
    started = time.perf_counter()
    return _ok(search.query_groups(ctx, name, search.legacy_body(body or {})), started)


@router.post(COLLECTION + "/snapshots", dependencies=[AdminDep], summary="Qdrant: snapshot")
def create_snapshot(name: str, ctx: ServiceDep) -> Response:
    started = time.perf_counter()
    return _ok(coll.take_snapshot(ctx, name), started)


@router.get(COLLECTION + "/snapshots", dependencies=[AdminDep], summary="Qdrant: snapshots")
def list_snapshots(name: str, ctx: ServiceDep) -> Response:
    started = time.perf_counter()
    return _ok(coll.list_snapshots(ctx, name), started)


@router.put(COLLECTION + "/snapshots/recover", dependencies=[AdminDep], summary="Qdrant: recover")
def recover_snapshot(
    name: str, ctx: ServiceDep, grant: GrantDep, body: JsonBody = None
) -> Response:
    started = time.perf_counter()
    return _ok(coll.recover(ctx, name, body or {}, grant.covers), started)


@router.get(
    COLLECTION + "/snapshots/{file}",
    dependencies=[AdminDep],
    summary="Qdrant: download a snapshot",
    response_class=FileResponse,
)
def download_snapshot(name: str, file: str, ctx: ServiceDep) -> FileResponse:
    path = coll.snapshot_path(ctx, name, file)
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)


@router.delete(
    COLLECTION + "/snapshots/{file}", dependencies=[AdminDep], summary="Qdrant: delete snapshot"
)
def delete_snapshot(name: str, file: str, ctx: ServiceDep) -> Response:
    started = time.perf_counter()
    return _ok(coll.delete_snapshot(ctx, name, file), started)
