"""Admission control: bounded in-flight work and queue, fast refusals, no slot for slow bodies.

The middleware is driven with raw ASGI calls around an app that holds each request until
the test lets it go, so which request is running, waiting or refused is decided by the
test, not by timing.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.fixtures import ADMIN_KEY, make_settings, serve

from latentspace.api import create_app
from latentspace.api.admission import AdmissionMiddleware
from latentspace.api.app import served
from latentspace.settings import ServerSettings


class Held:
    """An ASGI app whose requests run until ``release`` is called for them."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.bodies: dict[str, bytes] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        name = scope["path"]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies[name] = body
        self.started.append(name)
        await self.gates.setdefault(name, asyncio.Event()).wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def release(self, name: str) -> None:
        self.gates.setdefault(name, asyncio.Event()).set()


async def call(
    app: Any,
    path: str,
    *,
    method: str = "POST",
    chunks: list[bytes] | None = None,
    stall: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    scope = {"type": "http", "method": method, "path": path, "headers": []}
    return await call_scope(app, scope, chunks if chunks is not None else [b"{}"], stall=stall)


async def call_scope(
    app: Any, scope: dict[str, Any], chunks: bytes | list[bytes], *, stall: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Send one request to ``app``: its body in ``chunks``, the last withheld if ``stall``."""
    pending = [chunks] if isinstance(chunks, bytes) else list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            body = pending.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(pending) or stall}
        if stall:
            await asyncio.sleep(3600)  # a sender that never finishes its body
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode(): v.decode() for k, v in start.get("headers", [])}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, body


def middleware(inner: Held, **overrides: Any) -> AdmissionMiddleware:
    options: dict[str, Any] = {
        "max_in_flight": 1,
        "max_queue": 1,
        "queue_timeout": 30.0,
        "body_timeout": 30.0,
    }
    options.update(overrides)
    return AdmissionMiddleware(inner, **options)


async def until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


def test_beyond_the_queue_requests_are_refused_at_once() -> None:
    async def scenario() -> None:
        inner = Held()
        app = middleware(inner)
        first = asyncio.create_task(call(app, "/a"))
        await until(lambda: inner.started == ["/a"])
        second = asyncio.create_task(call(app, "/b"))  # waits in the queue
        await until(lambda: len(app.waiting) == 1)
        status, headers, body = await call(app, "/c")  # no room: refused without waiting
        assert status == 503
        assert headers["retry-after"] == "1"
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(body)["type"] == "/problems/overloaded"
        assert inner.started == ["/a"]
        inner.release("/healthz")
        status, _, _ = await call(app, "/healthz", method="GET")  # never queued
        assert status == 200
        inner.release("/a")
        assert (await first)[0] == 200
        await until(lambda: inner.started == ["/a", "/healthz", "/b"])  # the waiter got the slot
        inner.release("/b")
        assert (await second)[0] == 200
        assert app.in_flight == 0
        assert not app.waiting

    asyncio.run(scenario())


def test_a_waiter_past_the_queue_deadline_is_refused_and_leaves_no_slot() -> None:
    async def scenario() -> None:
        inner = Held()
        app = middleware(inner, queue_timeout=0.05)
        first = asyncio.create_task(call(app, "/a"))
        await until(lambda: inner.started == ["/a"])
        status, _, body = await call(app, "/b")  # /a holds the slot until released below
        assert status == 503
        assert "QUEUE_TIMEOUT" in json.loads(body)["detail"]
        inner.release("/a")
        assert (await first)[0] == 200
        assert app.in_flight == 0
        inner.release("/c")
        assert (await call(app, "/c"))[0] == 200  # the slot is free again

    asyncio.run(scenario())


def test_a_burst_that_fits_waits_but_an_overflowed_queue_sheds_old_waiters() -> None:
    async def scenario() -> None:
        now = [0.0]
        inner = Held()
        app = middleware(
            inner, max_queue=2, queue_target=0.005, queue_interval=0.5, clock=lambda: now[0]
        )
        tasks = {name: asyncio.create_task(call(app, name)) for name in ("/a", "/b", "/c")}
        await until(lambda: inner.started == ["/a"] and len(app.waiting) == 2)
        now[0] = 1.0  # /b waited 1 s, far over target, but the queue never overflowed
        inner.release("/a")
        await until(lambda: inner.started == ["/a", "/b"])

        now[0] = 1.1
        tasks["/d"] = asyncio.create_task(call(app, "/d"))
        await until(lambda: len(app.waiting) == 2)
        status, _, body = await call(app, "/e")  # the queue overflows: refused at the door
        assert status == 503
        assert "capacity" in json.loads(body)["detail"]
        now[0] = 1.102  # the queue has room, but while shedding an arrival that finds
        status, _, body = await call(app, "/f")  # anyone waiting is refused at the door
        assert status == 503
        assert "capacity" in json.loads(body)["detail"]
        assert "/f" not in inner.bodies  # before its body was read

        now[0] = 1.104  # shedding: /c (waited 1.1 s) and /d (4 ms, under target) are
        inner.release("/b")  # judged in turn; /c goes, /d is served
        status, _, body = await tasks["/c"]
        assert status == 503
        assert "QUEUE_TARGET" in json.loads(body)["detail"]
        await until(lambda: inner.started == ["/a", "/b", "/d"])

        inner.release("/d")

        now[0] = 2.0  # no refusal for longer than the interval: bursts may wait again
        tasks["/g"] = asyncio.create_task(call(app, "/g"))
        tasks["/h"] = asyncio.create_task(call(app, "/h"))
        await until(lambda: inner.started[-1] == "/g" and len(app.waiting) == 1)
        now[0] = 3.0
        inner.release("/g")
        await until(lambda: inner.started[-1] == "/h")
        inner.release("/h")
        for name in ("/a", "/b", "/d", "/g", "/h"):
            assert (await tasks[name])[0] == 200
        assert app.in_flight == 0
        assert not app.waiting

    asyncio.run(scenario())


class AtOnce:
    """An ASGI app that answers without ever awaiting anything that suspends, as a search
    run on the event loop does."""

    def __init__(self) -> None:
        self.served: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()  # the body is there: returns without suspending
        self.served.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def test_work_that_never_suspends_is_admitted_and_shed_like_any_other() -> None:
    # A burst arriving together: without a yield after admission each request would take
    # the free slot, run and leave before the next one was looked at, and nothing would be
    # refused however long the burst
    async def scenario() -> None:
        inner = AtOnce()
        app = middleware(inner, max_in_flight=1, max_queue=1)  # type: ignore[arg-type]
        answers = await asyncio.gather(*(call(app, f"/{i}") for i in range(6)))
        assert [status for status, _, _ in answers] == [200, 200, 503, 503, 503, 503]
        assert inner.served == ["/0", "/1"]  # one ran, one waited its turn
        assert app.in_flight == 0
        assert not app.waiting

    asyncio.run(scenario())


def test_a_burst_of_searches_run_on_the_event_loop_is_shed(tmp_path: Path) -> None:
    # the waiter is served however long the first search takes (queue_target: a slow
    # first search on a busy machine must not turn the second 200 into a 503)
    server = ServerSettings(max_in_flight=1, max_queue=1, queue_target=30.0)
    settings = make_settings(tmp_path, server=server)
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        assert client.post("/v1/collections", json={"name": "c", "dim": 4}).status_code == 201
        items = [{"id": f"v{i}", "vector": [1.0, float(i), 0.0, 0.0]} for i in range(5)]
        assert client.post("/v1/collections/c/items", json={"items": items}).status_code == 200
        body = json.dumps({"query": {"vector": [1, 0, 0, 0]}, "k": 3}).encode()
        headers = [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {ADMIN_KEY}".encode()),
        ]

        async def burst() -> list[int]:
            async def one() -> int:
                scope = {
                    "type": "http",
                    "asgi": {"version": "3.0"},
                    "http_version": "1.1",
                    "method": "POST",
                    "scheme": "http",
                    "path": "/v1/collections/c/search",
                    "raw_path": b"/v1/collections/c/search",
                    "query_string": b"",
                    "root_path": "",
                    "headers": headers,
                    "client": ("127.0.0.1", 50000),
                    "server": ("testserver", 80),
                    "state": client.app_state.copy(),
                }
                return (await call_scope(served(app), scope, body))[0]

            return list(await asyncio.gather(*(one() for _ in range(6))))

        assert client.portal is not None
        statuses = client.portal.call(burst)
        # served on the event loop (test_lean checks where a lone vector runs), yet shed
        assert statuses == [200, 200, 503, 503, 503, 503]
        # the four found the queue full: turned away before the app's own layers saw them
        metrics = client.get("/metrics").text
        assert "latentspace_http_refused_at_door_total 4.0" in metrics


def test_a_stalled_body_gets_408_and_holds_no_slot() -> None:
    async def scenario() -> None:
        inner = Held()
        app = middleware(inner, body_timeout=0.05)
        stalled = asyncio.create_task(call(app, "/slow", chunks=[b'{"a": '], stall=True))
        inner.release("/fast")
        assert (await call(app, "/fast"))[0] == 200  # served while /slow is still sending
        status, headers, body = await stalled
        assert status == 408
        assert headers["connection"] == "close"
        assert "BODY_TIMEOUT" in json.loads(body)["detail"]
        assert "/slow" not in inner.started
        assert app.in_flight == 0

    asyncio.run(scenario())


def test_a_body_in_chunks_reaches_the_app_whole() -> None:
    async def scenario() -> None:
        inner = Held()
        app = middleware(inner)
        inner.release("/x")
        assert (await call(app, "/x", chunks=[b'{"a"', b": 1", b"}"]))[0] == 200
        assert inner.bodies["/x"] == b'{"a": 1}'

    asyncio.run(scenario())


@pytest.mark.timeout(30)
def test_a_half_sent_body_is_dropped_by_the_server(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, server=ServerSettings(body_timeout=0.5))
    with serve(settings) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(
                b"POST /v1/collections HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name": '
            )
            started = time.monotonic()
            answer = s.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert time.monotonic() - started < 10
