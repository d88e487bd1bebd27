"""`ids` on a search: only the named items may be found (the page's lasso), with filters."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

DIM = 8
BASE = "/v1/collections/c"


def test_a_search_keeps_to_the_ids_it_names(client: TestClient) -> None:
    assert client.post("/v1/collections", json={"name": "c", "dim": DIM}).status_code == 201
    x = np.random.default_rng(0).normal(size=(60, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    items = [
        {"id": f"i{n}", "vector": v.tolist(), "metadata": {"even": n % 2 == 0}}
        for n, v in enumerate(x)
    ]
    assert client.post(f"{BASE}/items", json={"items": items}).status_code == 200
    chosen = [f"i{n}" for n in range(0, 60, 3)]  # 20 of the 60

    def search(**extra: object) -> list[str]:
        body = {"query": {"vector": x[7].tolist()}, "k": 5, **extra}
        r = client.post(f"{BASE}/search", json=body)
        assert r.status_code == 200, r.text
        return [h["id"] for h in r.json()["results"]]

    # the best 5 of the chosen, in exact order (i7 itself is not among them)
    scores = x @ x[7]
    expected = sorted(chosen, key=lambda i: -scores[int(i[1:])])[:5]
    assert search(ids=chosen) == expected
    # ANDed with a filter; an unknown id is ignored
    even = [i for i in expected if int(i[1:]) % 2 == 0]
    got = search(ids=[*chosen, "nope"], filter={"even": True})
    assert got[: len(even)] == even
    assert all(int(i[1:]) % 2 == 0 and i in chosen for i in got)
    assert search(ids=["nope"]) == []
    # bad input: an empty id, and more ids than a search may name
    r = client.post(f"{BASE}/search", json={"query": {"vector": x[0].tolist()}, "ids": [""]})
    assert r.status_code == 422, r.text
    too_many = [f"x{n}" for n in range(50_001)]
    r = client.post(f"{BASE}/search", json={"query": {"vector": x[0].tolist()}, "ids": too_many})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
