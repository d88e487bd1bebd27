"""A lean request path for the hot routes: validate the body and call the endpoint directly.

FastAPI solves a route's dependency graph on every request (the service context, the auth
dependency and its bearer scheme, the path parameters, the body), which costs more than a
search of a 50k-item HNSW index. A route qualifies for the lean path when its endpoint takes
only ``str`` path parameters, one JSON body model and the service context (``ServiceDep``),
its route dependencies are the auth checks (which :class:`AuthorizedRoute` runs first
anyway), and it returns a ``Response`` (see ``convert.json_response``). Its requests are then
parsed by :func:`parse_json`, validated against the body model and passed straight to the endpoint.

Anything out of the ordinary (a body that is not JSON, does not parse or does not validate,
a missing content type) goes to FastAPI's own handler with the body already read, so every
error is the one FastAPI would have given. The OpenAPI document is FastAPI's, unchanged.
"""

from __future__ import annotations

import email.message
import inspect
import json
import typing
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pydantic_core
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

__all__ = ["JsonRequest", "LeanShape", "inline_when", "lean_handler", "lean_shape", "parse_json"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = typing.TypeVar("Endpoint", bound=Callable[..., Any])
_INLINE = "__lean_inline__"


def inline_when(predicate: Callable[..., bool]) -> Callable[[Endpoint], Endpoint]:
    """Mark a plain ``def`` endpoint to run on the event loop when ``predicate`` (called
    with the endpoint's arguments) says it will finish at once.

    A blocking endpoint normally runs on the thread pool, whose hand-over and wake-up cost
    more than a search of a warm index (FAISS plus the hit cache). The predicate
    must be cheap and must answer False for anything that may wait: I/O beyond an indexed
    read, an encoder, a lock another request may hold.
    """

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _INLINE, predicate)
        return endpoint

    return mark


def parse_json(body: bytes) -> Any:
    """A JSON body, parsed as the standard library parses it, five times faster.

    pydantic's parser (jiter) reads the float arrays vectors come in about 5x faster than
    ``json.loads`` and agrees with it on big integers, ``NaN`` and duplicate keys; what it
    refuses (lone surrogates, malformed JSON) goes to ``json.loads``, which accepts the one
    and raises ``JSONDecodeError`` for the other as before.
    """
    try:
        return pydantic_core.from_json(body)
    except ValueError:
        return json.loads(body)


class JsonRequest(Request):
    """A request whose JSON body is read by :func:`parse_json`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


@dataclass(frozen=True)
class LeanShape:
    """What the lean path passes an endpoint: its path parameters, its body model and the
    name of its service-context parameter."""

    path_params: tuple[str, ...]
    body_name: str
    body_model: type[BaseModel]
    service_name: str | None


def lean_shape(
    dependant: Dependant,
    endpoint: Callable[..., Any],
    *,
    service: Callable[..., Any],
    checks: frozenset[Callable[..., Any]],
) -> LeanShape | None:
    """The endpoint's shape when it qualifies for the lean path, else None.

    Args:
        dependant: the route's FastAPI dependant.
        endpoint: the route's endpoint function.
        service: the dependency that yields the service context.
        checks: dependencies the route runs before the handler (the auth checks).
    """
    special = (
        dependant.request_param_name,
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    if any(special) or dependant.query_params or dependant.header_params:
        return None
    if dependant.cookie_params or len(dependant.body_params) != 1:
        return None
    if any(p.field_info.annotation is not str for p in dependant.path_params):
        return None
    body = dependant.body_params[0]
    model = body.field_info.annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    if getattr(body.field_info, "embed", False) or getattr(body.field_info, "media_type", "") != (
        "application/json"
    ):
        return None
    service_name = None
    for sub in dependant.dependencies:
        if sub.call is service and sub.name:
            service_name = sub.name
        elif sub.call not in checks:
            return None
    if typing.get_type_hints(endpoint).get("return") is not Response:
        return None
    return LeanShape(tuple(p.name for p in dependant.path_params), body.name, model, service_name)


def lean_handler(
    shape: LeanShape,
    endpoint: Callable[..., Any],
    fallback: Handler,
    service: Callable[[Request], Any],
) -> Handler:
    """A handler that calls ``endpoint`` directly, and ``fallback`` (FastAPI's) for any
    request it does not take."""
    blocking = not inspect.iscoroutinefunction(endpoint)
    inline: Callable[..., bool] | None = getattr(endpoint, _INLINE, None)

    async def handle(request: Request) -> Response:
        body = await request.body()  # kept on the request: the fallback reads it again
        if not body or not _is_json(request.headers.get("content-type")):
            return await fallback(request)
        try:
            value = shape.body_model.model_validate(parse_json(body))
        except Exception:  # JSONDecodeError, RecursionError, ValidationError: FastAPI's answer
            return await fallback(request)
        kwargs: dict[str, Any] = {p: request.path_params[p] for p in shape.path_params}
        kwargs[shape.body_name] = value
        if shape.service_name is not None:
            kwargs[shape.service_name] = service(request)
        if blocking and inline is not None and inline(**kwargs):
            response: Response = endpoint(**kwargs)
        elif blocking:
            response = await run_in_threadpool(endpoint, **kwargs)
        else:
            response = await endpoint(**kwargs)
        return response

    return handle


def _is_json(content_type: str | None) -> bool:
    # As FastAPI reads it: application/json or application/*+json, parameters allowed.
    if content_type == "application/json":
        return True
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
