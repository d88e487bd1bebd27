"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from latentspace.api.deps import AuthorizedRoute, ContextDep, GrantDep, ReadDep, peek_grant
from latentspace.service import collections, health

__all__ = ["router"]

router = APIRouter(tags=["health"], route_class=AuthorizedRoute)


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    """Always ``{"status": "ok"}`` while the process serves requests."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, indexes open",
    responses={503: {"description": "Not ready"}},
)
def readyz(request: Request, context: ContextDep, response: Response) -> dict[str, Any]:
    """``ok`` once the lifespan has opened every index and the database answers;
    ``degraded`` (still 200: the others serve) naming each collection that cannot serve
    and why; 503 when the database does not answer, or holds no collection while the data
    directory holds collections' indexes (an empty or wrong database file). ``warm`` is
    false while the caches a start fills in the background (hit rows, payload indexes) are
    still filling: searches answer meanwhile, the first filters and hits slower.
    ``below_recall_target`` names the collections whose approximate index measured (at its
    last save) a recall@10 below the collection's ``recall_target``: they serve, less
    accurately than asked. ``damaged`` names, by collection, damage found in stored data
    (an item's unreadable metadata, a map file that does not load, an original that no
    longer matches its sha256): contained to what it touches, each with its repair. With
    API keys configured, collections are named only to a caller whose key reaches them."""
    grant = peek_grant(request)
    covers = collections.nothing if grant is None else grant.covers if grant.scoped else None
    ready = health.seen_by(health.readiness(context.service), covers)
    if not ready.ready:
        response.status_code = 503
        return {"status": "unavailable", "detail": ready.detail}
    if ready.unavailable or ready.warnings or ready.damaged:
        return {
            "status": "degraded",
            "unavailable": ready.unavailable,
            "warnings": ready.warnings,
            "damaged": ready.damaged,
            "warm": ready.warm,
            "below_recall_target": ready.below_recall_target,
        }
    return {"status": "ok", "warm": ready.warm, "below_recall_target": ready.below_recall_target}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[ReadDep],
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(context: ContextDep, grant: GrantDep) -> Response:
    """Request latency per route, encode and search timings, index sizes."""
    shown = context.metrics.render(grant.covers if grant.scoped else None)
    return Response(shown, media_type="text/plain; version=0.0.4; charset=utf-8")
