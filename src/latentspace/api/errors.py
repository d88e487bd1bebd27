"""Every error as ``application/problem+json`` (RFC 9457) with a stable ``type``.

Domain exceptions (:mod:`latentspace.errors`) map to a status and a type in one table;
request validation, HTTP errors and anything unexpected go through the same renderer, so
a client only ever parses one error shape. Unexpected errors are logged with the request
id and answered without internals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Send

from latentspace import errors
from latentspace.api.schemas.common import NAME_PATTERN
from latentspace.limits import over_limit

__all__ = [
    "CONFLICT",
    "NOT_FOUND",
    "OPENAI_PATHS",
    "PROBLEM_RESPONSES",
    "QDRANT_PREFIX",
    "ApiError",
    "BodyTooLarge",
    "all_failed",
    "install_error_handlers",
    "is_qdrant",
    "problem_for",
    "problem_response",
    "problem_responses",
    "send_problem",
]

logger = logging.getLogger(__name__)

# Most specific class first: the first isinstance match wins.
_DOMAIN: list[tuple[type[errors.LatentspaceError], int, str]] = [
    (errors.DimensionMismatch, 422, "dimension-mismatch"),
    (errors.LimitExceeded, 413, "limit-exceeded"),
    (errors.InvalidInput, 422, "invalid-input"),
    (errors.ModelMismatch, 409, "model-mismatch"),
    (errors.NotFound, 404, "not-found"),
    (errors.DuplicateRejected, 409, "duplicate"),
    (errors.Conflict, 409, "conflict"),
    (errors.ModelUnavailable, 422, "model-unavailable"),
    (errors.ModelInvalid, 422, "invalid-model"),
    (errors.UnsupportedModality, 422, "unsupported-modality"),
    (errors.EncoderError, 500, "encoder-error"),
    (errors.IndexCorrupted, 500, "index-corrupted"),
    (errors.VectorIndexError, 500, "index-error"),
    (errors.OverMemoryBudget, 507, "over-memory-budget"),
    (errors.QueryTimeout, 503, "timeout"),
    (errors.CorruptVector, 503, "corrupt-vector"),
    (errors.StoreError, 503, "store-error"),
    (errors.Unavailable, 503, "unavailable"),
]

_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "limit-exceeded",
    415: "unsupported-media-type",
    422: "validation-error",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problems with these statuses."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        for status in statuses
    }


# Every operation can answer these: a malformed or unauthorised request, a body that came
# too slowly, a body over the limit, a body that does not validate, a client locked out for
# wrong keys, a server past capacity. Operations add what is theirs (404, 409).
PROBLEM_RESPONSES = problem_responses(400, 401, 403, 408, 413, 422, 429, 503)
NOT_FOUND = problem_responses(404)
CONFLICT = problem_responses(409)


class ApiError(StarletteHTTPException):
    """An HTTP error raised inside ``api/`` with a stable problem type."""

    def __init__(
        self, status: int, kind: str, detail: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.kind = kind


class BodyTooLarge(ApiError):
    """The request body passed its limit (``setting``) while it was being read."""

    def __init__(self, limit: int, size: int, setting: str = "max_body_bytes") -> None:
        detail = str(over_limit(setting, limit, size, "bytes", "request body"))
        super().__init__(413, "limit-exceeded", detail)


def problem_for(error: errors.LatentspaceError) -> tuple[int, str]:
    """The HTTP status and problem type of a domain error."""
    for cls, status, kind in _DOMAIN:
        if isinstance(error, cls):
            return status, kind
    return 500, "internal-error"


# The Qdrant-compatible routes answer errors in Qdrant's shape, which its clients show.
QDRANT_PREFIX = "/qdrant"


def is_qdrant(path: str) -> bool:
    """Whether ``path`` is one of the Qdrant-compatible routes'."""
    return path == QDRANT_PREFIX or path.startswith(QDRANT_PREFIX + "/")


# The OpenAI-compatible routes answer errors in OpenAI's shape, which its SDKs can show.
OPENAI_PATHS = frozenset({"/v1/embeddings", "/v1/models"})
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def error_body(
    status: int,
    kind: str,
    detail: str,
    *,
    instance: str,
    request_id: str | None,
    errors_: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], str]:
    """The body and media type of an error: a problem, or OpenAI's or Qdrant's error on
    their routes."""
    if is_qdrant(instance):
        return {"status": {"error": f"{HTTPStatus(status).phrase}: {detail}"}, "time": 0.0}, (
            "application/json"
        )
    if instance in OPENAI_PATHS:
        loc = errors_[0].get("loc", []) if errors_ else []
        fields = [str(part) for part in loc if part not in ("body", "query")]
        error = {
            "message": detail,
            "type": _OPENAI_TYPES.get(status)
            or ("server_error" if status >= 500 else "invalid_request_error"),
            "param": fields[0] if fields else None,
            "code": kind,
        }
        return {"error": error}, "application/json"
    body: dict[str, Any] = {
        "type": f"/problems/{kind}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": request_id,
    }
    if errors_ is not None:
        body["errors"] = errors_
    return body, "application/problem+json"


def problem_response(
    request: Request,
    status: int,
    kind: str,
    detail: str,
    *,
    errors_: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response that names the request's id (on the Qdrant routes, Qdrant's
    error, and a 400 where the native API answers 422, as Qdrant does)."""
    if status == 422 and is_qdrant(request.url.path):
        status = 400
    body, media_type = error_body(
        status,
        kind,
        detail,
        instance=request.url.path,
        request_id=getattr(request.state, "request_id", None),
        errors_=jsonable_encoder(errors_) if errors_ is not None else None,
    )
    return JSONResponse(body, status_code=status, media_type=media_type, headers=headers)


async def send_problem(
    send: Send,
    status: int,
    kind: str,
    detail: str,
    *,
    instance: str,
    request_id: str | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """A problem+json answer sent straight on the ASGI channel, for the middleware that
    answers before the app (and its exception handlers) sees the request."""
    body, media_type = error_body(status, kind, detail, instance=instance, request_id=request_id)
    raw = json.dumps(body).encode()
    start = [
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(raw)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": raw})


def all_failed(
    request: Request,
    failures: list[errors.LatentspaceError],
    detail: str,
    details: list[dict[str, Any]],
) -> JSONResponse:
    """The problem for a batch none of whose parts was stored: the parts' common status
    (413 when all were over a limit, say), else 422; ``details`` go into ``errors``."""
    status, kind = problem_for(failures[0])
    if any(problem_for(e)[1] != kind for e in failures):
        status, kind = 422, "invalid-input"
    return problem_response(request, status, kind, detail, errors_=details)


def _allowed_methods(request: Request) -> list[str]:
    # Every method some route (nested routers included) takes for this path.
    allowed = []
    for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


# what a name pattern means, in words: a person reads this, not the regular expression
_PATTERNS_IN_WORDS = {
    NAME_PATTERN: "1-128 letters, digits, '_', '.' or '-', starting with a letter or digit",
}


def _message(e: Any) -> str:
    pattern = (e.get("ctx") or {}).get("pattern")
    if e.get("type") == "string_pattern_mismatch" and pattern in _PATTERNS_IN_WORDS:
        given = str(e.get("input", ""))
        shown = given if len(given) <= 60 else f"{given[:57]}..."
        return f"{shown!r} is not a name: use {_PATTERNS_IN_WORDS[pattern]}"
    return str(e.get("msg", ""))


def _validation_errors(error: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for e in error.errors():
        out.append({"loc": list(e.get("loc", ())), "msg": _message(e), "type": e.get("type")})
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that render every error as a problem."""

    async def domain(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.LatentspaceError)
        status, kind = problem_for(exc)
        if status >= 500:
            logger.error("request failed: %s", exc, exc_info=exc)
        return problem_response(request, status, kind, str(exc))

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = _validation_errors(exc)
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return problem_response(
            request, 422, "validation-error", f"{where}: {first['msg']}", errors_=details
        )

    async def http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = getattr(exc, "kind", None) or _BY_STATUS.get(exc.status_code, "http-error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route's methods
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(request, exc.status_code, kind, str(exc.detail), headers=headers)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error", exc_info=exc)
        return problem_response(
            request, 500, "internal-error", "internal error; the server log has the details"
        )

    app.add_exception_handler(errors.LatentspaceError, domain)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(Exception, unexpected)
