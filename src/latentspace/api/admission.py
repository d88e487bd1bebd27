"""Admission control: bounded work in flight, a bounded queue, and refusals that come fast.

Past capacity a server that accepts everything serves nobody: every request waits behind
all the others until clients time out. So at most ``max_in_flight`` requests run at once,
at most ``max_queue`` more wait for a slot, and anything beyond is answered at once with 503
and ``Retry-After``. A burst that fits in the queue
waits its turn, up to ``queue_timeout``. A queue that overflows is not a burst but more
arrivals than the server can serve: from then on, until ``queue_interval`` seconds pass
without a refusal, the server sheds load, and each waiter that has waited ``queue_target``
or more is refused when its turn comes (the queue discipline of CoDel, Nichols & Jacobson,
"Controlling Queue Delay", 2012, and of Facebook's "Fail at Scale", 2015). So under
sustained overload the requests that are served wait little, instead of every one of them
waiting out the whole queue, and the rest are refused within ``queue_target``.

While the server sheds load, an arrival that finds anyone waiting is refused at the door,
before its body is read: under sustained overload a refusal then costs as little as it can
and the queue holds no work that would wait past target anyway. The server asks the door
first of all (``app.served``: :meth:`AdmissionMiddleware.turns_away`), before the app's
other layers (telemetry, request ids, the Host check) spend anything on the request.

Every request yields to the event loop once after it takes its slot. A search that runs on
the event loop itself (``lean.inline_when``) never awaits, so without that yield each
arrival would take the free slot, run and leave before the next was looked at: the backlog
would wait in the loop's ready queue and the sockets, where nothing counts or refuses it.

A request's body is read *before* it takes a slot, under ``body_timeout``, so slow or
stalled senders hold no slot (they get 408). Liveness, readiness and metrics are never
queued.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

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
        queue_target: float | None = None,
        queue_interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        on_built: Callable[[AdmissionMiddleware], None] | None = None,
        refused: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.max_in_flight, self.max_queue = max_in_flight, max_queue
        self.queue_timeout, self.body_timeout = queue_timeout, body_timeout
        self.queue_target = queue_timeout if queue_target is None else queue_target
        self.queue_interval, self.clock = queue_interval, clock
        self.in_flight = 0
        self.waiting: list[_Waiter] = []
        self.shedding_until = 0.0  # the clock's time until which waiters over target go
        self._refused = refused  # counts each refusal at the door
        if on_built is not None:  # the app's outermost call asks turns_away first
            on_built(self)

    def turns_away(self, scope: Scope) -> bool:
        """Whether a request would be refused at the door (:meth:`_door_shut`), asked
        before anything else looks at it; the app then answers it with :meth:`turn_away`."""
        return scope["type"] == "http" and scope["path"] not in _EXEMPT and self._door_shut()

    async def turn_away(self, send: Send, path: str) -> None:
        """Answer a request :meth:`turns_away` refused: 503 with ``Retry-After``, and no
        more work than that (no request id, log line or latency sample; it is counted)."""
        try:
            self._overflow()
        except _Refused as e:
            if self._refused is not None:
                self._refused()
            await _answer(send, e, path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _EXEMPT:
            await self.app(scope, receive, send)
            return
        try:
            self._at_the_door()  # asked again: the app may not ask first (turns_away)
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
            async with asyncio.timeout(self.body_timeout):  # no task per request, as wait_for
                await read_all()
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

    def _door_shut(self) -> bool:
        """Whether an arrival now would be refused anyway: it finds the queue full, or,
        while the server sheds load, finds anyone waiting. So under sustained overload a
        refusal costs as little as it can, and the queue holds at most one request between
        the slots, instead of work that will wait past target."""
        return len(self.waiting) >= self.max_queue or (
            bool(self.waiting) and self.clock() < self.shedding_until
        )

    def _at_the_door(self) -> None:
        # Refuse before the body is read what would be refused anyway (_door_shut).
        if self._door_shut():
            self._overflow()

    def _overflow(self) -> None:
        self.shedding_until = self.clock() + self.queue_interval
        raise _Refused(
            503,
            "overloaded",
            f"the server is at capacity ({self.max_in_flight} requests running, "
            f"{self.max_queue} waiting); retry shortly",
            retry_after=1,
        )

    async def _admit(self) -> None:
        if self.in_flight < self.max_in_flight and not self.waiting:
            self.in_flight += 1
            # each arrival takes its slot or its place in the queue before any of them runs
            # (see the module's docstring)
            await asyncio.sleep(0)
            return
        if len(self.waiting) >= self.max_queue:
            self._overflow()
        slot = _Waiter(self.clock(), asyncio.get_running_loop().create_future())
        self.waiting.append(slot)
        try:
            granted = await asyncio.wait_for(asyncio.shield(slot.future), self.queue_timeout)
        except TimeoutError as e:
            if slot in self.waiting:
                self.waiting.remove(slot)
            if slot.future.done() and slot.future.result():  # granted as the deadline passed
                self._release()
            raise _Refused(
                503,
                "overloaded",
                f"waited {self.queue_timeout:g} s for a slot (LATENTSPACE_SERVER__QUEUE_TIMEOUT)",
                retry_after=1,
            ) from e
        if not granted:
            raise _Refused(
                503,
                "overloaded",
                f"the queue overflowed and this request waited {self.queue_target:g} s or "
                "more (LATENTSPACE_SERVER__QUEUE_TARGET); retry shortly",
                retry_after=1,
            )

    def _release(self) -> None:
        """Hand the freed slot to the oldest waiter the queue discipline keeps, or free it."""
        now = self.clock()
        while self.waiting:
            slot = self.waiting.pop(0)
            if slot.future.done():  # timed out already
                continue
            if now < self.shedding_until and now - slot.since >= self.queue_target:
                self.shedding_until = now + self.queue_interval
                slot.future.set_result(False)
                continue
            slot.future.set_result(True)
            return
        self.in_flight -= 1


@dataclass(frozen=True, eq=False)
class _Waiter:
    since: float
    future: asyncio.Future[bool]


async def _answer(send: Send, refusal: _Refused, path: str) -> None:
    headers = []
    if refusal.retry_after is not None:
        headers.append((b"retry-after", str(refusal.retry_after).encode()))
    if refusal.status == 408:
        headers.append((b"connection", b"close"))
    await send_problem(
        send, refusal.status, refusal.kind, refusal.detail, instance=path, headers=headers
    )
