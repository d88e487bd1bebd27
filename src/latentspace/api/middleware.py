"""One ASGI middleware for what every request needs: an id, a body limit, a log line, a metric.

The body limit counts bytes as they arrive, so a chunked upload without Content-Length is
stopped at the limit instead of being buffered whole; a declared Content-Length over the
limit is refused before anything is read.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from latentspace.api.errors import BodyTooLarge, send_problem
from latentspace.api.metrics import Metrics

__all__ = ["RequestContextMiddleware"]

logger = logging.getLogger("latentspace.access")

# methods a metric names; any other (h11 takes any token) counts as OTHER, so clients
# cannot grow the series without bound
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")


def _headers(scope: Scope) -> tuple[str | None, str | None]:
    # X-Request-Id and Content-Length in one pass (ASGI names are lower-case; first counts)
    request_id = length = None
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id" and request_id is None:
            request_id = value.decode("latin-1")
        elif key == b"content-length" and length is None:
            length = value.decode("latin-1")
    return request_id, length


class RequestContextMiddleware:
    """Request ids, the body-size limit, access logs and latency histograms."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        metrics: Metrics,
        upload_limits: Sequence[tuple[re.Pattern[str], int, str]] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        # paths that take large files (streamed to disk): their own limit and its setting
        self.upload_limits = upload_limits
        # request ids: 64 random bits per process, then a counter (uuid4 reads the OS's
        # random source on every request)
        self._id_prefix, self._ids = uuid.uuid4().hex[:16], itertools.count()
        self._series: dict[tuple[str, str, int], Any] = {}

    def _new_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):016x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming, declared = _headers(scope)
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else self._new_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        seen = 0
        limit, setting = self.max_body_bytes, "max_body_bytes"
        for pattern, upload_limit, upload_setting in self.upload_limits:
            if pattern.match(scope["path"]):
                limit, setting = upload_limit, upload_setting

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit, seen, setting)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                await send_problem(
                    send_with_id,
                    413,
                    "limit-exceeded",
                    str(BodyTooLarge(limit, int(declared), setting).detail),
                    instance=scope["path"],
                    request_id=request_id,
                    headers=[(b"connection", b"close")],
                )
            else:
                await self.app(scope, counted_receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            series = (template, method, status)
            histogram = self._series.get(series)
            if histogram is None:  # labels() takes a lock and builds a key: once per series
                histogram = self._series[series] = self.metrics.requests.labels(
                    template, method, str(status)
                )
            histogram.observe(elapsed)
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "%s %s %d %.1fms",
                    scope["method"],
                    scope["path"],
                    status,
                    elapsed * 1000,
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )
