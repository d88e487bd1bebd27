"""MMR and group_by in search: variety where plain ranking repeats itself, groups that are
distinct documents, and bad parameters answered as problems."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import assert_problem

BASE = "/v1/collections/raw"
DIM = 16


def _unit(v: np.ndarray) -> list[float]:
    return (v / np.linalg.norm(v)).tolist()


@pytest.fixture
def raw(client: TestClient) -> TestClient:
    """Five near-copies of one passage nearest the query (a0..a4), then three distinct
    passages a little further away (b, c, d), then noise; ``doc`` groups them."""
    rng = np.random.default_rng(3)
    query = np.zeros(DIM)
    query[0] = 1.0
    base = np.zeros(DIM)
    base[0], base[1] = 1.0, 0.3
    items = [
        {
            "id": f"a{i}",
            "vector": _unit(base + rng.normal(scale=0.01, size=DIM)),
            "metadata": {"doc": "A", "part": i},
        }
        for i in range(5)
    ]
    for name, axis in (("b", 2), ("c", 3), ("d", 4)):
        v = np.zeros(DIM)
        v[0], v[axis] = 1.0, 0.6
        items.append({"id": name, "vector": _unit(v), "metadata": {"doc": name.upper()}})
    for i in range(20):
        v = rng.normal(size=DIM)
        v[0] = -abs(v[0])
        items.append({"id": f"n{i}", "vector": _unit(v), "metadata": {"doc": f"N{i % 4}"}})
    assert client.post("/v1/collections", json={"name": "raw", "dim": DIM}).status_code == 201
    r = client.post(f"{BASE}/items", json={"items": items})
    assert r.status_code == 200, r.text
    return client


QUERY = {"vector": [1.0] + [0.0] * (DIM - 1)}


def _ids(r: object) -> list[str]:
    return [h["id"] for h in r.json()["results"]]  # type: ignore[attr-defined]


def test_mmr_trades_the_near_copies_for_distinct_passages(raw: TestClient) -> None:
    plain = _ids(raw.post(f"{BASE}/search", json={"query": QUERY, "k": 4}))
    assert all(i.startswith("a") for i in plain)  # four of the five near-copies
    r = raw.post(
        f"{BASE}/search", json={"query": QUERY, "k": 4, "mmr": {"lambda": 0.5, "candidates": 8}}
    )
    assert r.status_code == 200, r.text
    # the pool is the eight passages; each of b, c, d scores 0.5·0.857 − 0.5·0.821 > 0 against
    # a near-copy's 0.5·0.958 − 0.5·1.000 < 0
    diverse = _ids(r)
    assert diverse[0] in plain  # the most relevant comes first
    assert sorted(diverse[1:]) == ["b", "c", "d"]
    # scores stay the relevance (cosine to the query), not the MMR objective
    scores = {h["id"]: h["score"] for h in r.json()["results"]}
    assert scores["b"] == pytest.approx(1 / np.sqrt(1.36), abs=1e-5)


def test_mmr_with_lambda_one_is_plain_ranking(raw: TestClient) -> None:
    plain = _ids(raw.post(f"{BASE}/search", json={"query": QUERY, "k": 6}))
    same = raw.post(
        f"{BASE}/search", json={"query": QUERY, "k": 6, "mmr": {"lambda": 1, "candidates": 6}}
    )
    assert _ids(same) == plain


def test_mmr_pages_through_its_choice(raw: TestClient) -> None:
    body = {"query": QUERY, "mmr": {"candidates": 20}}
    whole = _ids(raw.post(f"{BASE}/search", json={**body, "k": 6}))
    second = _ids(raw.post(f"{BASE}/search", json={**body, "k": 3, "offset": 3}))
    assert second == whole[3:]


def test_group_by_gives_distinct_groups_best_first(raw: TestClient) -> None:
    r = raw.post(
        f"{BASE}/search",
        json={"query": QUERY, "k": 10, "group_by": {"field": "doc", "size": 2, "groups": 3}},
    )
    assert r.status_code == 200, r.text
    groups = r.json()["groups"]
    values = [g["value"] for g in groups]
    assert values[0] == "A"  # b, c and d tie: any two of them follow, each once
    assert len(set(values[1:])) == 2
    assert set(values[1:]) <= {"B", "C", "D"}
    assert len(groups[0]["hits"]) == 2
    assert all(h["metadata"]["doc"] == g["value"] for g in groups for h in g["hits"])
    best = [g["hits"][0]["score"] for g in groups]
    assert best == sorted(best, reverse=True)
    assert _ids(r) == [h["id"] for g in groups for h in g["hits"]]


def test_group_by_keeps_json_types_apart_and_skips_items_without_the_field(
    client: TestClient,
) -> None:
    assert client.post("/v1/collections", json={"name": "t", "dim": 2}).status_code == 201
    items = [
        {"id": "one-int", "vector": [1.0, 0.0], "metadata": {"g": 1}},
        {"id": "one-str", "vector": [0.99, 0.1], "metadata": {"g": "1"}},
        {"id": "true", "vector": [0.98, 0.2], "metadata": {"g": True}},
        {"id": "tags", "vector": [0.97, 0.25], "metadata": {"g": [1, "x"]}},
        {"id": "none", "vector": [0.96, 0.3], "metadata": {}},
    ]
    assert client.post("/v1/collections/t/items", json={"items": items}).status_code == 200
    r = client.post(
        "/v1/collections/t/search",
        json={"query": {"vector": [1, 0]}, "k": 10, "group_by": {"field": "g", "size": 5}},
    )
    groups = {repr(g["value"]): [h["id"] for h in g["hits"]] for g in r.json()["groups"]}
    assert groups == {
        "1": ["one-int", "tags"],
        "'1'": ["one-str"],
        "True": ["true"],
        "'x'": ["tags"],
    }


@pytest.mark.parametrize(
    ("extra", "status", "kind", "needle"),
    [
        ({"mmr": {"lambda": 1.5}}, 422, "validation-error", "lambda"),
        ({"mmr": {"candidates": 0}}, 422, "validation-error", "candidates"),
        ({"mmr": {"candidates": 5}, "k": 10}, 422, "invalid-input", "k + offset"),
        ({"mmr": {}, "group_by": {"field": "doc"}}, 422, "invalid-input", "not both"),
        ({"group_by": {"field": "doc"}, "offset": 2}, 422, "invalid-input", "offset"),
        ({"group_by": {"field": "a;drop"}}, 422, "validation-error", "field"),
        ({"group_by": {"field": "doc", "size": 0}}, 422, "validation-error", "size"),
        (
            {"group_by": {"field": "doc", "size": 100, "groups": 1000}},
            413,
            "limit-exceeded",
            "max_k",
        ),
        ({"mmr": {"lambda": "much"}}, 422, "validation-error", "lambda"),
    ],
)
def test_bad_mmr_and_group_by_are_problems(
    raw: TestClient, extra: dict[str, object], status: int, kind: str, needle: str
) -> None:
    r = raw.post(f"{BASE}/search", json={"query": QUERY, **extra})
    assert_problem(r, status, kind, needle)
