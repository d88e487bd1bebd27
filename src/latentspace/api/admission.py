"""Admission control: bounded work in flight, a bounded queue, and refusals that come fast.

Past capacity a server that accepts everything serves nobody: every request waits behind
all the others until clients time out. So at most ``max_in_flight`` requests run at once,
at most ``max_queue`` more wait for a slot, and a waiter is refused once it has waited
``queue_timeout`` seconds; anything beyond is answered at once with 503 and
``Retry-After``. A request's body is read *before* it takes a slot, under
``body_timeout``, so slow or stalled senders hold no slot (they get 408). Liveness,
readiness and metrics are never queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from latentspace.api.errors import ApiError, send_problem

__all__ = ["AdmissionMiddleware"]

_EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _Refused(Exception):
    def __init__(self, status: int, kind: str, detail: str, retry_after: int | None = None):
        super().__init__(detail)
        self.status, self.kind, self.detail, self.retry_after = status, kind, detail, retry_after


class AdmissionMiddleware:
    """Bounded in-flight requests and queue, a queue-time deadline and a body-read timeout."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        max_queue: int,
        queue_timeout: float,
        body_timeout: float,
    ) -> None:
        self.app = app
        self.max_in_flight, self.max_queue = max_in_flight, max_queue
        self.queue_timeout, self.body_timeout = queue_timeout, body_timeout
        self.in_flight = 0
        self.waiting: list[asyncio.Future[None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _EXEMPT:
            await self.app(scope, receive, send)
            return
        try:
            replay = await self._read_body(receive) if scope["method"] in _BODY_METHODS else receive
            await self._admit()
        except _Refused as e:
            await _answer(send, e, scope["path"])
            return
        except ApiError as e:  # the body limit, counted while the body was read
            await _answer(send, _Refused(e.status_code, e.kind, str(e.detail)), scope["path"])
            return
        try:
            await self.app(scope, replay, send)
        finally:
            self._release()

    async def _read_body(self, receive: Receive) -> Callable[[], Awaitable[Message]]:
        messages: list[Message] = []

        async def read_all() -> None:
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return

        try:
            await asyncio.wait_for(read_all(), self.body_timeout)
        except TimeoutError as e:
            raise _Refused(
                408,
                "request-timeout",
                f"the request body did not arrive within {self.body_timeout:g} s "
                "(LATENTSPACE_SERVER__BODY_TIMEOUT)",
            ) from e
        queue = list(messages)

        async def replay() -> Message:
            if queue:
                return queue.pop(0)
            return await receive()  # after the body: the disconnect, when it comes

        return replay

    async def _admit(self) -> None:
        if self.in_flight < self.max_in_flight and not self.waiting:
            self.in_flight += 1
            return
        if len(self.waiting) >= self.max_queue:
            raise _Refused(
                503,
                "overloaded",
                f"the server is at capacity ({self.max_in_flight} requests running, "
                f"{self.max_queue} waiting); retry shortly",
                retry_after=1,
            )
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(slot)
        try:
            await asyncio.wait_for(asyncio.shield(slot), self.queue_timeout)
        except TimeoutError as e:
            if slot in self.waiting:
                self.waiting.remove(slot)
            if slot.done():  # granted just as the deadline passed: give the slot back
                self._release()
            raise _Refused(
                503,
                "overloaded",
                f"waited {self.queue_timeout:g} s for a slot (LATENTSPACE_SERVER__QUEUE_TIMEOUT)",
                retry_after=1,
            ) from e

    def _release(self) -> None:
        # hand the slot to the oldest waiter, or free it
        while self.waiting:
            slot = self.waiting.pop(0)
            if not slot.done():
                slot.set_result(None)
                return
        self.in_flight -= 1


async def _answer(send: Send, refusal: _Refused, path: str) -> None:
    headers = []
    if refusal.retry_after is not None:
        headers.append((b"retry-after", str(refusal.retry_after).encode()))
    if refusal.status == 408:
        headers.append((b"connection", b"close"))
    await send_problem(
        send, refusal.status, refusal.kind, refusal.detail, instance=path, headers=headers
    )
