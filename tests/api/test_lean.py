"""The lean request path: the routes that take it skip FastAPI's dependency solving, and
every request it does not take gets FastAPI's own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import numpy as np
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from tests.fixtures import ADMIN_KEY, make_settings

from latentspace.api import create_app
from latentspace.api.deps import get_service, require_admin, require_read
from latentspace.api.lean import JsonRequest, lean_shape, parse_json
from latentspace.api.routes import collections as collection_routes
from latentspace.api.routes import items, search
from latentspace.service import Context, collections
from latentspace.service import search as search_service

BASE = "/v1/collections/lean"
DIM = 8


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path / "data"))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        assert c.post("/v1/collections", json={"name": "lean", "dim": DIM}).status_code == 201
        x = np.eye(DIM, dtype=np.float32)
        rows = [
            {"id": f"e{i}", "vector": v.tolist(), "metadata": {"i": i}} for i, v in enumerate(x)
        ]
        assert c.post(f"{BASE}/items", json={"items": rows}).status_code == 200
        yield c


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What FastAPI's own handler did: parse a JSON body, or solve the dependencies (the
    lean path does neither)."""
    calls: list[str] = []
    real_solve, real_json = fastapi.routing.solve_dependencies, JsonRequest.json

    async def solve(*args: Any, **kwargs: Any) -> Any:
        calls.append("solve")
        return await real_solve(*args, **kwargs)

    async def parse(self: JsonRequest) -> Any:
        calls.append("json")
        return await real_json(self)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", solve)
    monkeypatch.setattr(JsonRequest, "json", parse)
    return calls


def shapes() -> dict[tuple[str, str], bool]:
    out = {}
    for module in (search, items, collection_routes):
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            shape = lean_shape(
                route.dependant,
                route.endpoint,
                service=get_service,
                checks=frozenset({require_read, require_admin}),
            )
            for method in route.methods:
                out[(method, route.path)] = shape is not None
    return out


def test_search_takes_the_lean_path_and_other_routes_do_not() -> None:
    lean = shapes()
    assert lean[("POST", "/v1/collections/{name}/search")]
    assert not lean[("POST", "/v1/collections/{name}/directions")]  # returns a model
    assert not lean[("POST", "/v1/collections/{name}/search/image")]  # a form
    assert not lean[("GET", "/v1/collections/{name}")]


def test_a_lean_search_solves_no_dependencies(client: TestClient, solved: list[str]) -> None:
    r = client.post(f"{BASE}/search", json={"query": {"vector": [0, 0, 1, 0, 0, 0, 0, 0]}, "k": 2})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0] == {
        "id": "e2",
        "score": pytest.approx(1.0),
        "metadata": {"i": 2},
        "text": None,
        "uri": None,
        "document_id": None,
        "sha256": None,
        "vector": None,
        "legs": None,
    }
    assert solved == []
    client.get(f"{BASE}/items/e2")  # a route FastAPI handles
    assert solved == ["solve"]


def test_a_lone_vector_runs_on_the_event_loop_and_anything_that_may_wait_on_the_pool(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    where: list[str] = []
    contexts: list[Context] = []
    real = search_service.search

    def recorded(ctx: Context, name: str, query: Any) -> Any:
        try:
            asyncio.get_running_loop()
            where.append("loop")
        except RuntimeError:  # a pool thread has no running loop
            where.append("pool")
        contexts.append(ctx)
        return real(ctx, name, query)

    monkeypatch.setattr(search_service, "search", recorded)
    vector = [0, 0, 1, 0, 0, 0, 0, 0]

    def where_ran(body: dict[str, Any]) -> str:
        r = client.post(f"{BASE}/search", json=body)
        assert r.status_code == 200, r.text
        return where[-1]

    assert where_ran({"query": {"vector": vector}, "k": 2}) == "loop"
    assert where_ran({"query": {"vector": vector}, "filter": {"i": 2}}) == "pool"
    assert where_ran({"query": {"item": "e1"}}) == "pool"  # reads a stored vector
    assert where_ran({"query": {"vector": vector}, "include": ["vector"]}) == "pool"
    assert where_ran({"query": {"vector": vector}, "k": 101}) == "pool"  # a long page
    terms = {"terms": [{"vector": vector}, {"item": "e1"}]}
    assert where_ran({"query": terms}) == "pool"
    ctx = contexts[0]
    with ctx.live.writing(collections.get(ctx, "lean")):  # a write under way
        assert where_ran({"query": {"vector": vector}}) == "pool"
    assert where_ran({"query": {"vector": vector}}) == "loop"


@pytest.mark.parametrize(
    ("body", "headers", "status", "needle"),
    [
        (b'{"query": {"vector": [1, 2]', {"content-type": "application/json"}, 422, "JSON"),
        (b'{"query": {"vector": "x"}, "k": 0}', {"content-type": "application/json"}, 422, "k"),
        (b'{"query": {"text": "a"}}', {"content-type": "text/plain"}, 422, "dictionary"),
        (b"", {"content-type": "application/json"}, 422, "required"),
    ],
    ids=["malformed", "invalid", "not-json", "empty"],
)
def test_what_the_lean_path_refuses_gets_fastapis_answer(
    client: TestClient,
    solved: list[str],
    body: bytes,
    headers: dict[str, str],
    status: int,
    needle: str,
) -> None:
    r = client.post(f"{BASE}/search", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert needle in r.json()["detail"], r.json()["detail"]
    assert solved  # FastAPI's handler answered


@pytest.mark.parametrize(
    "text",
    [
        "[1.5, -2e-3, 0.1]",
        '{"x": ' + "9" * 30 + "}",
        "[NaN, Infinity]",
        '{"a": 1, "a": 2}',
        '"\\udfff"',
        '"\\u00e9\\u0000"',
    ],
    ids=["floats", "huge-int", "nan", "duplicate-key", "lone-surrogate", "escapes"],
)
def test_parse_json_reads_what_the_standard_library_reads(text: str) -> None:
    import json

    expected, got = json.loads(text), parse_json(text.encode())
    assert repr(got) == repr(expected)  # repr: NaN != NaN, and 1e30 == 10**30
