"""Quantized collections over HTTP: codes find candidates, SQL's float32 vectors rescore
them, settings change while searches go on, and impossible settings are refused."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import ADMIN_KEY, make_settings

from latentspace.api import create_app
from latentspace.settings import IndexSettings

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
DIM, N = 64, 1_500


def clustered(n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, DIM))[rng.integers(0, 40, n)] + 0.7 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def create(client: TestClient, name: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "dim": DIM, "index": "hnsw", **fields}
    r = client.post("/v1/collections", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def fill(client: TestClient, name: str, x: np.ndarray) -> None:
    for start in range(0, len(x), 500):
        items = [{"id": f"v{i}", "vector": x[i].tolist()} for i in range(start, start + 500)]
        r = client.post(f"/v1/collections/{name}/items", json={"items": items})
        assert r.status_code == 200, r.text


def search(client: TestClient, name: str, vector: np.ndarray, k: int = 10) -> list[dict[str, Any]]:
    r = client.post(
        f"/v1/collections/{name}/search", json={"query": {"vector": vector.tolist()}, "k": k}
    )
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    with TestClient(create_app(make_settings(tmp_path)), headers=AUTH) as client:
        yield client  # type: ignore[misc]


@pytest.mark.parametrize("quantization", ["fp16", "sq8", "binary"])
def test_quantized_search_answers_exact_cosines(db_client: TestClient, quantization: str) -> None:
    client = db_client  # SQLite, and PostgreSQL when configured: the rows come from SQL
    x = clustered()
    create(client, "codes", quantization=quantization)
    fill(client, "codes", x)
    index = client.post("/v1/collections/codes/flush").json()["index"]
    assert index["quantization"] == quantization
    assert index["rescore"] >= 1
    assert index["recall_at_10"] >= 0.95  # the save-time check, against exact search
    assert index["below_target"] is False
    create(client, "floats")
    fill(client, "floats", x)
    floats = client.post("/v1/collections/floats/flush").json()["index"]
    assert floats["quantization"] == "none"
    assert index["bytes"] < floats["bytes"]
    for i in (0, 700, 1_499):
        hits = search(client, "codes", x[i])
        assert hits[0]["id"] == f"v{i}"
        for hit in hits:  # rescored: the exact cosine against the stored float32 vector
            j = int(hit["id"][1:])
            assert hit["score"] == pytest.approx(float(x[i] @ x[j]), abs=1e-5)
        exact = [h["id"] for h in search(client, "floats", x[i])]
        assert len(set(exact) & {h["id"] for h in hits}) >= 9


def test_a_recall_target_the_codes_miss_is_reported(client: TestClient) -> None:
    create(client, "coarse", quantization="binary", rescore=1, recall_target=0.99)
    fill(client, "coarse", clustered())
    index = client.post("/v1/collections/coarse/flush").json()["index"]
    assert index["recall_target"] == 0.99
    assert index["recall_at_10"] < 0.99  # sign bits alone, no rescoring
    assert index["below_target"] is True
    ready = client.get("/readyz").json()
    assert "coarse" in ready["below_recall_target"]


def test_changing_quantization_keeps_answering(client: TestClient) -> None:
    x = clustered()
    create(client, "live")
    fill(client, "live", x)
    client.post("/v1/collections/live/flush")
    answers: list[int] = []
    stop = threading.Event()

    def searching() -> None:
        while not stop.is_set():
            answers.append(len(search(client, "live", x[5])))

    searcher = threading.Thread(target=searching)
    searcher.start()
    try:
        r = client.patch("/v1/collections/live", json={"quantization": "sq8"})
        assert r.status_code == 200, r.text
        assert r.json()["index"]["quantization_requested"] == "sq8"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            index = client.get("/v1/collections/live").json()["index"]
            if index["quantization"] == "sq8" and not index.get("rebuilding"):
                break
            time.sleep(0.05)
    finally:
        stop.set()
        searcher.join()
    assert index["quantization"] == "sq8"
    assert answers
    assert set(answers) == {10}  # every search answered in full, before, during and after
    assert search(client, "live", x[5])[0]["id"] == "v5"
    # back to float32 (null resets to auto: float32 below a million)
    r = client.patch("/v1/collections/live", json={"quantization": None})
    assert r.json()["index"]["quantization_requested"] == "auto"
    flushed = client.post("/v1/collections/live/flush").json()["index"]
    assert flushed["quantization"] == "none"


def test_quantized_index_reloads_after_a_restart(tmp_path: Path) -> None:
    x = clustered()
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings), headers=AUTH) as client:
        create(client, "kept", quantization="binary")
        fill(client, "kept", x)
        before = [h["id"] for h in search(client, "kept", x[42])]
    with TestClient(create_app(settings), headers=AUTH) as client:
        stats = client.get("/v1/collections/kept").json()
        assert stats["index"]["quantization"] == "binary"
        assert [h["id"] for h in search(client, "kept", x[42])] == before


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"quantization": "int4"}, 422, "quantization"),
        ({"rescore": 0}, 422, "rescore"),
        ({"rescore": 101}, 422, "rescore"),
        ({"recall_target": 1.5}, 422, "recall_target"),
        ({"kind": "flat"}, 422, "kind"),
    ],
)
def test_bad_settings_are_refused(
    client: TestClient, body: dict[str, Any], status: int, needle: str
) -> None:
    create(client, "c")
    r = client.patch("/v1/collections/c", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert needle in r.text


def test_impossible_codes_for_the_collection_are_refused(client: TestClient) -> None:
    r = client.post(
        "/v1/collections",
        json={"name": "l2", "dim": DIM, "metric": "l2", "quantization": "binary"},
    )
    assert r.status_code == 422, r.text
    assert "signs" in r.json()["detail"]
    r = client.post("/v1/collections", json={"name": "odd", "dim": 12, "quantization": "binary"})
    assert r.status_code == 422, r.text
    assert "divisible by 8" in r.json()["detail"]
    r = client.post(
        "/v1/collections", json={"name": "ivf", "dim": DIM, "index": "ivf", "quantization": "sq8"}
    )
    assert r.status_code == 422, r.text
    create(client, "l2ok", metric="l2")
    r = client.patch("/v1/collections/l2ok", json={"quantization": "binary"})
    assert r.status_code == 422, r.text
    assert client.get("/v1/collections/l2ok").json()["index"]["quantization_requested"] == "auto"
    assert client.patch("/v1/collections/nope", json={"rescore": 4}).status_code == 404


def test_a_write_past_the_memory_budget_is_refused_whole(tmp_path: Path) -> None:
    # 150 kB: 300 float32 rows of 64 dims fit a flat index (264 B each), 1,200 do not (sq8 do)
    settings = make_settings(tmp_path, index=IndexSettings(memory_budget=150_000))
    x = clustered()
    with TestClient(create_app(settings), headers=AUTH) as client:
        create(client, "small", index="flat")
        items = [{"id": f"v{i}", "vector": x[i].tolist()} for i in range(300)]
        assert client.post("/v1/collections/small/items", json={"items": items}).status_code == 200
        items = [{"id": f"w{i}", "vector": x[i].tolist()} for i in range(300, 1_200)]
        r = client.post("/v1/collections/small/items", json={"items": items})
        assert r.status_code == 507, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        detail = r.json()["detail"]
        assert "1,200 vectors" in detail
        assert "memory budget" in detail
        assert "'sq8' would need" in detail  # the setting that would fit
        assert client.get("/v1/collections/small").json()["count"] == 300  # nothing written
        assert client.get("/v1/collections/small/items/w300").status_code == 404
        assert search(client, "small", x[7])[0]["id"] == "v7"  # still serving
        # the advice holds: under sq8 codes the same write fits
        r = client.patch("/v1/collections/small", json={"quantization": "sq8"})
        assert r.status_code == 200, r.text
        r = client.post("/v1/collections/small/items", json={"items": items})
        assert r.status_code == 200, r.text
        assert client.get("/v1/collections/small").json()["count"] == 1_200


def test_rescore_per_query(client: TestClient) -> None:
    x = clustered()
    create(client, "perq", quantization="binary", rescore=1)
    fill(client, "perq", x)
    exact = {int(i) for i in np.argsort(-(x @ x[3]))[:10]}

    def found(params: dict[str, Any]) -> set[int]:
        body = {"query": {"vector": x[3].tolist()}, "k": 10, "params": params}
        r = client.post("/v1/collections/perq/search", json=body)
        assert r.status_code == 200, r.text
        return {int(h["id"][1:]) for h in r.json()["results"]}

    assert len(found({"rescore": 32}) & exact) >= 9  # more candidates: exact again
    assert len(found({"rescore": 32}) & exact) >= len(found({}) & exact)
    for bad in (0, 101, "many"):
        r = client.post(
            "/v1/collections/perq/search",
            json={"query": {"vector": x[3].tolist()}, "params": {"rescore": bad}},
        )
        assert r.status_code == 422, r.text
        assert "rescore" in r.text
