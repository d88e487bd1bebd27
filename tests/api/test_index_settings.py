"""Index settings reach the server: `auto` under a memory budget, GPU mode, explicit rebuilds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import ADMIN_KEY, make_settings

from latentspace.api import create_app
from latentspace.errors import VectorIndexError
from latentspace.index import gpu_available
from latentspace.settings import IndexSettings

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
DIM, N = 32, 400


def started(tmp_path: Path, index: IndexSettings) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path, index=index)), headers=AUTH)


def vectors(n: int = N, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fill(client: TestClient, name: str, x: np.ndarray) -> None:
    r = client.post("/v1/collections", json={"name": name, "dim": DIM, "index": "auto"})
    assert r.status_code == 201, r.text
    items = [{"id": f"v{i}", "vector": v.tolist()} for i, v in enumerate(x)]
    r = client.post(f"/v1/collections/{name}/items", json={"items": items})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("budget", "kind"),
    [(None, "hnsw"), (50_000, "ivfpq")],  # HNSW of 400 × 32 needs ~160 kB, IVF-PQ ~26 kB
)
def test_auto_follows_the_memory_budget(tmp_path: Path, budget: int | None, kind: str) -> None:
    x = vectors()
    settings = IndexSettings(exact_limit=300, memory_budget=budget)
    with started(tmp_path, settings) as client:
        fill(client, "auto", x)  # crosses the exact limit: rebuilt in the background
        flushed = client.post("/v1/collections/auto/flush")  # waits for the rebuild, saves
        assert flushed.status_code == 200, flushed.text
        index = flushed.json()["index"]
        assert (index["requested"], index["kind"]) == ("auto", kind)
        assert index["recall_at_10"] >= 0.9, index  # measured against exact search
        if kind == "ivfpq":
            assert index["params"]["m"] == 16
            assert index["params"]["refine"] == "SQ8"
        for i in (0, 123, 399):
            r = client.post(
                "/v1/collections/auto/search", json={"query": {"vector": x[i].tolist()}, "k": 1}
            )
            assert r.json()["results"][0]["id"] == f"v{i}"
    with started(tmp_path, settings) as client:  # a restart loads the same kind
        assert client.get("/v1/collections/auto").json()["index"]["kind"] == kind


@pytest.mark.parametrize(("latency_ms", "kind"), [(1e-6, "hnsw"), (1e6, "flat")])
def test_auto_follows_the_measured_latency_budget(
    tmp_path: Path, latency_ms: float, kind: str
) -> None:
    # The line comes from exact search's cost measured in this process: a budget no search
    # meets leaves a limit of 1 vector, one no collection reaches keeps 400 vectors exact.
    with started(tmp_path, IndexSettings(exact_latency_ms=latency_ms)) as client:
        fill(client, "auto", vectors())
        flushed = client.post("/v1/collections/auto/flush")
        assert flushed.status_code == 200, flushed.text
        index = flushed.json()["index"]
        assert index["kind"] == kind, index
        if kind == "hnsw":
            assert index["exact_limit"] == 1
        else:
            assert index["exact_limit"] > 10**9
        explicit = client.post(
            "/v1/collections", json={"name": "exact", "dim": DIM, "index": "flat"}
        )
        assert explicit.json()["index"]["exact_limit"] is None  # only auto has a line


def test_a_pinned_exact_limit_wins_over_the_measurement(tmp_path: Path) -> None:
    settings = IndexSettings(exact_limit=300, exact_latency_ms=1e6)
    with started(tmp_path, settings) as client:
        fill(client, "auto", vectors())
        index = client.post("/v1/collections/auto/flush").json()["index"]
        assert (index["kind"], index["exact_limit"]) == ("hnsw", 300)


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU")
def test_gpu_on_without_a_gpu_refuses_to_start(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, index=IndexSettings(gpu="on")))
    with pytest.raises(VectorIndexError, match="LATENTSPACE_INDEX__GPU=on"), TestClient(app):
        pass


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("mode", ["auto", "off"])
def test_gpu_auto_and_off_serve_on_the_cpu(tmp_path: Path, mode: str) -> None:
    with started(tmp_path, IndexSettings(gpu=mode)) as client:  # type: ignore[arg-type]
        assert client.get("/readyz").status_code == 200


@pytest.fixture
def flat(tmp_path: Path) -> Iterator[TestClient]:
    with started(tmp_path, IndexSettings()) as client:
        fill(client, "f", vectors(50))
        yield client


def test_reindex_rebuilds_without_the_corruption_path(
    flat: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    x = vectors(50)
    query = {"query": {"vector": x[7].tolist()}, "k": 5}
    before = flat.post("/v1/collections/f/search", json=query).json()["results"]
    with caplog.at_level(logging.INFO, logger="latentspace"):
        r = flat.post("/v1/collections/f/reindex")
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 50
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert any("rebuilt from SQL on request" in rec.getMessage() for rec in caplog.records)
    after = flat.post("/v1/collections/f/search", json=query).json()["results"]
    assert [h["id"] for h in after] == [h["id"] for h in before]
    # writes after the rebuild land in the new index
    r = flat.post("/v1/collections/f/items", json={"items": [{"id": "new", "vector": [1.0] * DIM}]})
    assert r.status_code == 200, r.text
    top = flat.post("/v1/collections/f/search", json={"query": {"vector": [1.0] * DIM}, "k": 1})
    assert top.json()["results"][0]["id"] == "new"
