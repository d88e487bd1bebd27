"""Dependencies: the app context, the service context, and the auth checks (``Annotated`` aliases).

They are ``async def`` because none of them blocks: FastAPI runs a plain ``def`` dependency
on the thread pool, one thread hop per dependency per request.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from latentspace.api.auth import FULL, SCOPES, Grant, KeyRing, hash_key, is_loopback
from latentspace.api.errors import ApiError
from latentspace.api.lean import JsonRequest, lean_handler, lean_shape
from latentspace.api.metrics import Metrics
from latentspace.api.security import FailedKeys
from latentspace.errors import NotFound
from latentspace.service import Context
from latentspace.settings import Settings

__all__ = [
    "AdminDep",
    "AppContext",
    "AuthorizedRoute",
    "ContextDep",
    "GrantDep",
    "ReadDep",
    "ServiceDep",
    "WriteDep",
    "authorize",
    "peek_grant",
    "require_admin",
    "require_reach",
    "require_read",
    "require_unscoped",
    "require_write",
]


@dataclass
class AppContext:
    """What the lifespan builds and every request may use."""

    settings: Settings
    service: Context
    keys: KeyRing
    metrics: Metrics
    failed_keys: FailedKeys


async def get_context(request: Request) -> AppContext:
    """The lifespan's context."""
    context: AppContext = request.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_service(context: ContextDep) -> Context:
    """The service context every use-case takes."""
    return context.service


ServiceDep = Annotated[Context, Depends(get_service)]

# headers a proxy adds: a loopback peer that sends one is relaying someone else's request
_FORWARDED = frozenset({"forwarded", "x-forwarded-for", "x-real-ip"})

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer KEY`.")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def authorize(request: Request, needed: str) -> Grant:
    """What the caller may do, if it may do what needs ``needed`` (read, write or admin).

    Raises:
        ApiError: 401 without a valid key, 403 with a key whose scope is short of
            ``needed``, or 403 for a non-loopback client when no key is configured.
        NotFound: the route's collection (``{name}``) is beyond the key's reach.
    """
    context: AppContext = request.state.context
    keys = context.keys
    if not keys.enabled:
        return FULL
    if keys.loopback_only:
        host = request.client.host if request.client else None
        if is_loopback(host) and not _FORWARDED.intersection(request.headers):
            return FULL
        raise ApiError(
            403,
            "forbidden",
            "no API keys are configured, so only loopback clients are served, and a request "
            "a proxy forwarded is not one; set LATENTSPACE_API_KEYS (or LATENTSPACE_AUTH=off "
            "for local use)",
        )
    challenge = {"WWW-Authenticate": "Bearer"}
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if "authorization" not in request.headers and "api-key" in request.headers:
        scheme, token = "bearer", request.headers["api-key"]  # how Qdrant's clients send it
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send `Authorization: Bearer KEY` (or `api-key: KEY`)",
            headers=challenge,
        )
    client = request.client.host if request.client else "?"
    digest = hash_key(token.strip())
    wait = context.failed_keys.retry_after(client, digest)
    if wait is not None:
        raise ApiError(
            429,
            "too-many-requests",
            f"too many wrong API keys from this client; retry in {wait} s (keys already "
            "accepted from it still work)",
            headers={"Retry-After": str(wait)},
        )
    grant = keys.grant_of_digest(digest)
    if grant is None:
        context.failed_keys.failed(client)
        raise ApiError(401, "unauthorized", "invalid API key", headers=challenge)
    context.failed_keys.accepted(client, digest)
    name = request.path_params.get("name")
    if isinstance(name, str) and not grant.covers(name):
        # beyond the key's reach: answered as a collection that does not exist
        raise NotFound(f"collection {name!r} does not exist")
    if not grant.allows(needed):
        raise ApiError(
            403,
            "forbidden",
            f"this API key has {grant.scope} scope; this needs "
            f"{'an' if needed == 'admin' else 'a'} {needed} key",
        )
    return grant


def _granted(request: Request, needed: str) -> Grant:
    grant = authorize(request, needed)
    request.state.grant = grant
    return grant


async def get_grant(request: Request) -> Grant:
    """The caller's grant (what :class:`AuthorizedRoute` found; everything when the route
    checks no key)."""
    grant: Grant = getattr(request.state, "grant", FULL)
    return grant


GrantDep = Annotated[Grant, Depends(get_grant)]


def peek_grant(request: Request) -> Grant | None:
    """The caller's grant on a route that serves callers without a key too, or None when
    it shows none (a wrong key still counts against the client, as anywhere)."""
    try:
        return authorize(request, "read")
    except ApiError:
        return None


def require_reach(grant: Grant, name: str) -> None:
    """Refuse (403) to make collection ``name`` for a key that does not reach it; for
    collections that exist, :class:`AuthorizedRoute` answers 404 instead.

    Raises:
        ApiError: 403.
    """
    if not grant.covers(name):
        raise ApiError(
            403,
            "forbidden",
            f"this API key reaches the collections {grant.collections!r} only, and "
            f"{name!r} is not one of them",
        )


def require_unscoped(grant: Grant, what: str) -> None:
    """Refuse (403) ``what`` to a key that reaches only some collections: the server's own
    places (its snapshot folder, its bucket) hold every collection's files.

    Raises:
        ApiError: 403.
    """
    if grant.scoped:
        raise ApiError(
            403,
            "forbidden",
            f"{what} needs a key that reaches every collection: the server's snapshot "
            "places are shared by all of them (a key for some collections sends and "
            "receives its snapshots in the request and the response instead)",
        )


async def require_read(request: Request, credentials: BearerDep) -> Grant:
    """Any valid key. Declared so OpenAPI shows the bearer scheme."""
    del credentials
    return _granted(request, "read")


async def require_write(request: Request, credentials: BearerDep) -> Grant:
    """A write or admin key."""
    del credentials
    return _granted(request, "write")


async def require_admin(request: Request, credentials: BearerDep) -> Grant:
    """An admin key."""
    del credentials
    return _granted(request, "admin")


def _service_of(request: Request) -> Context:
    context: AppContext = request.state.context
    return context.service


class AuthorizedRoute(APIRoute):
    """A route that checks its API key before FastAPI reads and parses the body, parses
    JSON bodies with pydantic's parser (:class:`JsonRequest`), and takes the lean path
    (:mod:`latentspace.api.lean`) when its endpoint has the shape for it.

    FastAPI resolves dependencies only after parsing the body, so without this a caller
    with no key could make the server read and validate a body of ``max_body_bytes``.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        shape = lean_shape(
            self.dependant,
            self.endpoint,
            service=get_service,
            checks=frozenset(_NEEDS),
        )
        if shape is not None:
            handler = lean_handler(shape, self.endpoint, handler, _service_of)
        wanted = [_NEEDS[d.dependency] for d in self.dependencies if d.dependency in _NEEDS]
        needed = max(wanted, key=SCOPES.index) if wanted else None

        async def checked(request: Request) -> Response:
            if needed is not None:
                _granted(request, needed)
            return await handler(JsonRequest(request.scope, request.receive))

        return checked


_NEEDS: dict[Callable[..., Any], str] = {
    require_read: "read",
    require_write: "write",
    require_admin: "admin",
}

ReadDep = Depends(require_read)
WriteDep = Depends(require_write)
AdminDep = Depends(require_admin)
