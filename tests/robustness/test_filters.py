"""Filter cost is bounded: large $in/$or/$and compile inside the databases' limits, the
node count is capped before compiling, and a statement past its deadline is stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from tests.fixtures import ADMIN_KEY, make_settings

from latentspace.api import create_app
from latentspace.settings import LimitSettings
from latentspace.store.filters import matches

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
C = "/v1/collections/f"
N = 300


def metadata(i: int) -> dict[str, Any]:
    return {"n": i, "s": f"s{i}", "even": i % 2 == 0, "tags": [f"t{i % 7}"]}


def fill(client: TestClient, n: int = N) -> None:
    assert client.post("/v1/collections", json={"name": "f", "dim": 4}).status_code == 201
    for lo in range(0, n, 1000):
        items = [
            {"id": f"i{i}", "vector": [1.0, i / n, 0.5, 0.0], "metadata": metadata(i)}
            for i in range(lo, min(n, lo + 1000))
        ]
        assert client.post(f"{C}/items", json={"items": items}).status_code == 200


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path_factory.mktemp("filters")))
    with TestClient(app, headers=AUTH) as c:
        fill(c)
        yield c


def matching(client: TestClient, spec: dict[str, Any]) -> set[str]:
    body = {"query": {"vector": [1.0, 0.0, 0.0, 0.0]}, "k": N, "filter": spec}
    r = client.post(f"{C}/search", json=body)
    assert r.status_code == 200, r.text
    return {h["id"] for h in r.json()["results"]}


LARGE = {
    "in-1024-numbers": {"n": {"$in": list(range(0, 2048, 2))}},
    "in-1024-strings": {"s": {"$in": [f"s{i}" for i in range(1024)]}},
    "in-mixed-types": {"n": {"$in": [1, "1", True, None, 2.0, 3]}},
    "nin-1000": {"n": {"$nin": list(range(1000))}},
    "or-990": {"$or": [{"n": i} for i in range(0, 1980, 2)]},
    "and-990": {"$and": [{"n": {"$gte": i % 50}} for i in range(990)]},
    "not-or": {"$not": {"$or": [{"even": True}, {"tags": {"$contains": "t3"}}]}},
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spec", LARGE.values(), ids=LARGE)
def test_large_filters_run_and_agree_with_the_reference(
    client: TestClient, spec: dict[str, Any]
) -> None:
    expected = {f"i{i}" for i in range(N) if matches(spec, metadata(i))}
    assert matching(client, spec) == expected


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("spec", "status", "needle"),
    [
        ({"$or": [{"n": i} for i in range(10_000)]}, 413, "MAX_FILTER_NODES"),
        ({"$and": [{"n": {"$gte": 0}} for _ in range(100_000)]}, 413, "MAX_FILTER_NODES"),
        ({"n": {"$in": list(range(1025))}}, 422, "at most 1024"),
        ({"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"n": 1}}}}}}} | {}, 200, ""),
    ],
    ids=["or-10k", "and-100k", "in-1025", "nested-not"],
)
def test_filter_cost_is_refused_before_compiling(
    client: TestClient, spec: dict[str, Any], status: int, needle: str
) -> None:
    body = {"query": {"vector": [1.0, 0.0, 0.0, 0.0]}, "filter": spec}
    r = client.post(f"{C}/search", json=body)
    assert r.status_code == status, r.text
    if status != 200:
        assert r.headers["content-type"] == "application/problem+json"
        assert needle in r.json()["detail"]


@pytest.mark.timeout(120)
def test_large_filters_on_each_database(engine: Engine, tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path), engine=engine), headers=AUTH) as c:
        fill(c)
        for name, spec in LARGE.items():
            expected = {f"i{i}" for i in range(N) if matches(spec, metadata(i))}
            assert matching(c, spec) == expected, name


@pytest.mark.timeout(60)
def test_a_statement_past_its_deadline_is_stopped(engine: Engine, tmp_path: Path) -> None:
    limits = LimitSettings(max_query_seconds=0.001)
    app = create_app(make_settings(tmp_path, limits=limits), engine=engine)
    with TestClient(app, headers=AUTH) as c:
        fill(c, 2000)
        costly = {"$or": [{"s": {"$contains": f"x{i}"}} for i in range(300)]}
        body = {"query": {"vector": [1.0, 0.0, 0.0, 0.0]}, "filter": costly}
        r = c.post(f"{C}/search", json=body)
        assert r.status_code == 503, r.text
        assert r.json()["type"] == "/problems/timeout"
        assert "MAX_QUERY_SECONDS" in r.json()["detail"]
        # the connection is usable again, and unfiltered searches never had a deadline
        assert c.post(f"{C}/search", json={"query": {"vector": [1.0, 0, 0, 0]}}).status_code == 200
        assert c.get(C).json()["count"] == 2000
