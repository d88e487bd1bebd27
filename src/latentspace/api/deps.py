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

from latentspace.api.auth import KeyRing, hash_key, is_loopback
from latentspace.api.errors import ApiError
from latentspace.api.lean import JsonRequest, lean_handler, lean_shape
from latentspace.api.metrics import Metrics
from latentspace.api.security import FailedKeys
from latentspace.service import Context
from latentspace.settings import Settings

__all__ = [
    "AdminDep",
    "AppContext",
    "AuthorizedRoute",
    "ContextDep",
    "ReadDep",
    "ServiceDep",
    "authorize",
    "require_admin",
    "require_read",
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


def authorize(request: Request, needed: str) -> str:
    """The caller's scope, if it may do what needs ``needed`` (read or admin).

    Raises:
        ApiError: 401 without a valid key, 403 with a read key for admin work, or 403 for a
            non-loopback client when no key is configured.
    """
    context: AppContext = request.state.context
    keys = context.keys
    if not keys.enabled:
        return "admin"
    if keys.loopback_only:
        host = request.client.host if request.client else None
        if is_loopback(host) and not _FORWARDED.intersection(request.headers):
            return "admin"
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
    scope = keys.scope_of_digest(digest)
    if scope is None:
        context.failed_keys.failed(client)
        raise ApiError(401, "unauthorized", "invalid API key", headers=challenge)
    context.failed_keys.accepted(client, digest)
    if needed == "admin" and scope != "admin":
        raise ApiError(403, "forbidden", "this API key has read scope; this needs an admin key")
    return scope


async def require_read(request: Request, credentials: BearerDep) -> str:
    """Any valid key (read or admin). Declared so OpenAPI shows the bearer scheme."""
    del credentials
    return authorize(request, "read")


async def require_admin(request: Request, credentials: BearerDep) -> str:
    """An admin key."""
    del credentials
    return authorize(request, "admin")


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
            checks=frozenset({require_read, require_admin}),
        )
        if shape is not None:
            handler = lean_handler(shape, self.endpoint, handler, _service_of)
        wanted = {d.dependency for d in self.dependencies}
        needed = "admin" if require_admin in wanted else "read" if require_read in wanted else None

        async def checked(request: Request) -> Response:
            if needed is not None:
                authorize(request, needed)
            return await handler(JsonRequest(request.scope, request.receive))

        return checked


ReadDep = Depends(require_read)
AdminDep = Depends(require_admin)
