"""The app factory: ``create_app(settings)`` → a FastAPI app whose lifespan opens everything.

Run it with ``latentspace serve`` or ``uvicorn latentspace.api.app:create_app --factory``.
Nothing is built at import time: the database, encoders and indexes are opened in the
lifespan (the database upgraded, every index verified, replayed or rebuilt, every
collection's encoder loaded) and closed (indexes saved) on shutdown.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from latentspace import __version__
from latentspace.api.admission import AdmissionMiddleware
from latentspace.api.auth import KeyRing, is_loopback
from latentspace.api.deps import AppContext
from latentspace.api.errors import PROBLEM_RESPONSES, install_error_handlers
from latentspace.api.metrics import Metrics
from latentspace.api.middleware import RequestContextMiddleware
from latentspace.api.openapi import state_limits
from latentspace.api.routes import (
    bulk,
    classify,
    documents,
    duplicates,
    embeddings,
    health,
    items,
    jobs,
    maps,
    migrate,
    qdrant,
    rerank,
    search,
    snapshots,
)
from latentspace.api.routes import collections as collection_routes
from latentspace.api.routes.snapshots import RESTORE_PATHS
from latentspace.api.security import FailedKeys, SecurityMiddleware
from latentspace.live import EncoderFactory
from latentspace.service import Context, collections, lifecycle
from latentspace.settings import Settings
from latentspace.store.expiry import Clock
from latentspace.web import WEB_DIR

__all__ = ["create_app", "create_app_from_env", "served"]


_DESCRIPTION = """
Text and images in one CLIP latent space: collections of items, composite (latent
arithmetic) search, directions, slerp paths, duplicates, RAG documents,
OpenAI-compatible embeddings, zero-shot classification and auto-tagging jobs. Errors are
`application/problem+json` with a stable `type`.
"""


def _on_loopback(url: str | None) -> bool:
    # Whether the server listens on a loopback address (``serve`` says where it listens).
    host = urlsplit(url).hostname if url else None
    return host is not None and is_loopback(host)


def create_app(
    settings: Settings | None = None,
    *,
    encoder_factory: EncoderFactory | None = None,
    engine: Engine | None = None,
    url: str | None = None,
    warm: bool = True,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the app; nothing is opened until its lifespan starts.

    Args:
        settings: default ``Settings()`` (read from the environment).
        encoder_factory: builds encoders from specs (tests inject fakes).
        engine: a SQLAlchemy engine to use instead of one from the settings.
        url: where the app will answer, written beside the data directory's lock so CLI
            commands on the same directory talk to this server.
        warm: load every collection's encoder at start-up, so a server's first queries do
            not wait for it (the in-process CLI loads one only when it encodes).
        clock: the UTC time items expire by (tests control it); default the system's.

    Raises:
        InvalidInput: malformed API keys in the settings.
    """
    settings = settings or Settings()
    keys = KeyRing.from_settings(settings)
    metrics = Metrics()
    holder: dict[str, Context] = {}
    metrics.watch_indexes(
        lambda: collections.index_sizes(holder["service"]) if "service" in holder else {}
    )
    metrics.watch_expiry(lambda: _swept(holder.get("service")))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        service = await run_in_threadpool(
            lambda: lifecycle.start(
                settings,
                engine=engine,
                encoder_factory=encoder_factory,
                on_timing=metrics.timing,
                warm=warm,
                url=url,
                follow=True,
                clock=clock,
            )
        )
        holder["service"] = service
        failed_keys = FailedKeys(
            limit=settings.server.max_key_failures, window=settings.server.key_failure_window
        )
        try:
            yield {"context": AppContext(settings, service, keys, metrics, failed_keys)}
        finally:
            holder.pop("service", None)
            await run_in_threadpool(lifecycle.stop, service)

    app = FastAPIOffline(  # /docs and /redoc with their assets from the package, not a CDN
        title="latentspace",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
        # no redirect from ".../" to "...": a client that follows it would send the DELETE
        # of an item id resolved away ("..") to the collection itself
        redirect_slashes=False,
        # operation ids are the handlers' names (``search_items``), as generated clients
        # show them, not FastAPI's default of name + path + method
        generate_unique_id_function=lambda route: route.name,
    )
    install_error_handlers(app)
    cors = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if cors:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors,
            allow_methods=["*"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id", "retry-after"],
        )
    app.add_middleware(
        AdmissionMiddleware,
        max_in_flight=settings.server.max_in_flight,
        max_queue=settings.server.max_queue,
        queue_timeout=settings.server.queue_timeout,
        queue_target=settings.server.queue_target,
        queue_interval=settings.server.queue_interval,
        body_timeout=settings.server.body_timeout,
        on_built=lambda door: setattr(app.state, "door", door),
        refused=metrics.refused_at_door.inc,
    )
    app.add_middleware(
        SecurityMiddleware,
        allowed_hosts=[h.strip() for h in settings.allowed_hosts.split(",") if h.strip()],
        # loopback names only, against DNS rebinding: while loopback clients are served
        # without keys, and whenever the server listens on loopback, whatever the auth mode
        loopback_only=keys.loopback_only or _on_loopback(url or settings.cluster.url),
        cors_origins=cors,
    )
    app.add_middleware(  # every answer, refusals included, gets an id and a log
        RequestContextMiddleware,
        max_body_bytes=settings.limits.max_body_bytes,
        metrics=metrics,
        upload_limits=[(RESTORE_PATHS, settings.limits.max_snapshot_bytes, "max_snapshot_bytes")],
    )
    if settings.proxies():  # outermost: the client each later step sees is the proxied one
        # `latentspace serve` runs uvicorn with proxy_headers off, so only these are believed
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.proxies())
    for module in (  # matched in this order: the hot routes first
        search,
        health,
        collection_routes,
        items,
        bulk,
        duplicates,
        documents,
        embeddings,
        rerank,
        classify,
        jobs,
        snapshots,
        maps,
        migrate,
        qdrant,
    ):
        app.include_router(module.router)
    app.include_router(duplicates.trash_router)
    state_limits(app, settings.limits)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    return app


def served(app: FastAPI) -> ASGIApp:
    """The ASGI app a server runs: ``app``, with admission's door asked first. While the
    server sheds load, a request that would be refused is answered 503 before any of the
    app's own layers (telemetry, request ids, the Host check) spends time on it, so under
    overload a refusal costs as little as it can (``bench/bench_overload.py``)."""

    async def door_first(scope: Scope, receive: Receive, send: Send) -> None:
        door: AdmissionMiddleware | None = getattr(app.state, "door", None)
        if door is not None and door.turns_away(scope):
            await door.turn_away(send, scope["path"])
            return
        await app(scope, receive, send)

    return door_first


def _swept(service: Context | None) -> dict[str, int]:
    # items the sweep deleted, by collection (none while stopped, or in a replica)
    return {} if service is None or service.sweeper is None else service.sweeper.swept


def create_app_from_env() -> ASGIApp:
    """The app from the environment's settings, :func:`served` (``serve --workers``: each
    worker calls it, and logs as ``serve`` was told to)."""
    logs = os.environ.get("LATENTSPACE_SERVE_WORKER_LOGS")
    if logs:
        from latentspace.logs import configure_logging

        options = json.loads(logs)
        configure_logging(str(options["level"]), json_lines=bool(options["json_lines"]))
    return served(create_app(Settings()))
