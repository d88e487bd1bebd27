"""Expiry over HTTP: ``expires_at`` on items and ``ttl_seconds`` on collections, reads that
skip expired items at once on a clock the test moves, the sweep that deletes them (counted
in ``/metrics``, followed by a second server on the same database), and a 4xx for every bad
expiry or TTL."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from tests.fixtures import ADMIN_KEY, make_settings

from latentspace.api import create_app
from latentspace.settings import ClusterSettings, ServerSettings

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def until(check: Any, timeout: float = 20.0) -> None:
    """Wait until ``check()`` is true (the sweep and the follower run on their own threads)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.02)


def ids(c: TestClient, name: str) -> set[str]:
    r = c.post(f"/v1/collections/{name}/search", json={"query": {"vector": [1, 0]}, "k": 10})
    assert r.status_code == 200, r.text
    return {h["id"] for h in r.json()["results"]}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(tmp_path: Path, clock: Clock) -> Iterator[TestClient]:
    """A server on the test's clock whose sweep runs every 50 ms."""
    settings = make_settings(tmp_path, server=ServerSettings(expiry_sweep=0.05))
    with TestClient(create_app(settings, clock=clock), headers=HEADERS) as c:
        yield c


def test_items_expire_by_their_own_time_or_the_collections_ttl(
    server: TestClient, clock: Clock
) -> None:
    c = server
    made = c.post("/v1/collections", json={"name": "e", "dim": 2, "ttl_seconds": 3600})
    assert made.status_code == 201, made.text
    assert made.json()["ttl_seconds"] == 3600
    soon = (T0 + timedelta(seconds=60)).astimezone(timezone(timedelta(hours=2))).isoformat()
    items = [
        {"id": "soon", "vector": [1, 0], "expires_at": soon},
        {"id": "ttl", "vector": [1, 0.1]},
    ]
    assert c.post("/v1/collections/e/items", json={"items": items}).status_code == 200
    got = c.get("/v1/collections/e/items/soon").json()
    assert datetime.fromisoformat(got["expires_at"]) == T0 + timedelta(seconds=60)
    got = c.get("/v1/collections/e/items/ttl").json()
    assert datetime.fromisoformat(got["expires_at"]) == T0 + timedelta(seconds=3600)
    assert ids(c, "e") == {"soon", "ttl"}
    clock.now = T0 + timedelta(seconds=60)
    assert ids(c, "e") == {"ttl"}  # at once, whether or not the sweep has run
    assert c.get("/v1/collections/e/items/soon").status_code == 404
    swept = 'latentspace_expired_items_deleted_total{collection="e"} 1.0'
    until(lambda: swept in c.get("/metrics").text)
    assert c.get("/v1/collections/e").json()["count"] == 1
    clock.now = T0 + timedelta(seconds=3600)
    assert ids(c, "e") == set()
    until(lambda: c.get("/v1/collections/e").json()["count"] == 0)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "t", "dim": 2, "ttl_seconds": 0}, "ttl_seconds"),
        ({"name": "t", "dim": 2, "ttl_seconds": -5}, "ttl_seconds"),
        ({"name": "t", "dim": 2, "ttl_seconds": 10**12}, "ttl_seconds"),
        ({"name": "t", "dim": 2, "ttl_seconds": "1h"}, "ttl_seconds"),
        ({"name": "t", "dim": 2, "ttl_seconds": 1.5}, "ttl_seconds"),
    ],
)
def test_a_bad_ttl_is_422(server: TestClient, body: dict[str, Any], needle: str) -> None:
    r = server.post("/v1/collections", json=body)
    assert r.status_code == 422, r.text
    assert needle in r.text
    assert server.get("/v1/collections/t").status_code == 404


@pytest.mark.parametrize(
    ("expires_at", "status", "needle"),
    [
        ("2031-01-01T00:00:00", 422, "timezone"),  # no zone: which noon?
        ("tomorrow", 422, "expires_at"),
        (12, 422, "expires_at"),
        ("2029-12-31T23:59:59Z", 422, "not in the future"),
        (T0.isoformat(), 422, "not in the future"),
    ],
)
def test_a_bad_expiry_is_refused_and_nothing_is_written(
    server: TestClient, expires_at: object, status: int, needle: str
) -> None:
    assert server.post("/v1/collections", json={"name": "x", "dim": 2}).status_code == 201
    item = {"id": "a", "vector": [1, 0], "expires_at": expires_at}
    r = server.post("/v1/collections/x/items", json={"items": [item]})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert needle in r.text
    assert server.get("/v1/collections/x").json()["count"] == 0


@pytest.fixture
def two(engine: Engine, tmp_path: Path, clock: Clock) -> Iterator[tuple[TestClient, TestClient]]:
    """Two servers on one database, each with its own data directory: "a" on the test's
    clock (and sweeping every 50 ms), "b" on the system's, following a's writes."""
    url = engine.url.render_as_string(hide_password=False)
    cluster = ClusterSettings(replica=True, poll_ms=50, consistency_timeout=5)
    with ExitStack() as stack:
        clients = []
        for name, own in (("a", clock), ("b", None)):
            settings = make_settings(
                tmp_path / name,
                database_url=url,
                cluster=cluster,
                server=ServerSettings(expiry_sweep=0.05),
            )
            app = create_app(settings, warm=False, clock=own)
            clients.append(stack.enter_context(TestClient(app, headers=HEADERS)))
        yield clients[0], clients[1]


def test_a_second_server_follows_the_sweep(
    two: tuple[TestClient, TestClient], clock: Clock
) -> None:
    a, b = two
    assert a.post("/v1/collections", json={"name": "r", "dim": 2}).status_code == 201
    items = [
        {"id": "gone", "vector": [1, 0], "expires_at": (T0 + timedelta(seconds=5)).isoformat()},
        {"id": "kept", "vector": [1, 0.2]},
    ]
    r = a.post("/v1/collections/r/items", json={"items": items})
    assert r.status_code == 200, r.text
    until(lambda: ids(b, "r") == {"gone", "kept"})  # b's clock says 2026: not expired there
    clock.now = T0 + timedelta(seconds=5)
    assert ids(a, "r") == {"kept"}
    until(lambda: ids(b, "r") == {"kept"})  # a's sweep deleted it; b applied the delete
    assert b.get("/v1/collections/r/items/gone").status_code == 404
    metrics = a.get("/metrics").text
    assert re.search(r'latentspace_expired_items_deleted_total\{collection="r"\} 1\.0', metrics)
