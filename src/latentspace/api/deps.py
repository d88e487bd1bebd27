"""Dependencies: the app context, the service, and the auth checks (``Annotated`` aliases)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from latentspace.api.auth import KeyRing, is_loopback
from latentspace.api.errors import ApiError
from latentspace.api.metrics import Metrics
from latentspace.service import LatentSpace
from latentspace.settings import Settings

__all__ = [
    "AdminDep",
    "AppContext",
    "ContextDep",
    "ReadDep",
    "SettingsDep",
    "SpaceDep",
    "require_admin",
    "require_read",
]


@dataclass
class AppContext:
    """What the lifespan builds and every request may use."""

    settings: Settings
    space: LatentSpace
    keys: KeyRing
    metrics: Metrics


def get_context(request: Request) -> AppContext:
    """The lifespan's context."""
    context: AppContext = request.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_space(context: ContextDep) -> LatentSpace:
    """The service."""
    return context.space


def get_settings(context: ContextDep) -> Settings:
    """The settings the app was built with."""
    return context.settings


SpaceDep = Annotated[LatentSpace, Depends(get_space)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer KEY`.")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _check(request: Request, context: AppContext, credentials: BearerDep, needed: str) -> str:
    keys = context.keys
    if not keys.enabled:
        return "admin"
    if keys.loopback_only:
        host = request.client.host if request.client else None
        if is_loopback(host):
            return "admin"
        raise ApiError(
            403,
            "forbidden",
            "no API keys are configured, so only loopback clients are served; "
            "set LATENTSPACE_API_KEYS (or LATENTSPACE_AUTH=off for local use)",
        )
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send `Authorization: Bearer KEY`",
            headers=challenge,
        )
    scope = keys.scope_of(credentials.credentials)
    if scope is None:
        raise ApiError(401, "unauthorized", "invalid API key", headers=challenge)
    if needed == "admin" and scope != "admin":
        raise ApiError(403, "forbidden", "this API key has read scope; this needs an admin key")
    return scope


def require_read(request: Request, context: ContextDep, credentials: BearerDep) -> str:
    """Any valid key (read or admin)."""
    return _check(request, context, credentials, "read")


def require_admin(request: Request, context: ContextDep, credentials: BearerDep) -> str:
    """An admin key."""
    return _check(request, context, credentials, "admin")


ReadDep = Depends(require_read)
AdminDep = Depends(require_admin)
