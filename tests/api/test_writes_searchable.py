"""An acknowledged write is searchable at once: rows an HNSW graph has not linked yet are
scored exactly beside it, over HTTP, filtered or not, and a flush links them all."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import ADMIN_KEY, make_settings

from latentspace.api import create_app
from latentspace.index.delta import Merger

DIM = 16


def unit_rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_rows_are_found_the_moment_their_write_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[Merger] = []  # nothing is linked into the graph until the flush
    monkeypatch.setattr(Merger, "start", lambda self: held.append(self))
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    x = unit_rows(3_000, seed=1)
    with TestClient(create_app(make_settings(tmp_path)), headers=auth) as c:
        created = c.post("/v1/collections", json={"name": "c", "dim": DIM, "index": "hnsw"})
        assert created.status_code == 201, created.text
        for start in range(0, 3_000, 1_000):
            body = {
                "ids": [f"v{i}" for i in range(start, start + 1_000)],
                "vectors": base64.b64encode(x[start : start + 1_000].tobytes()).decode(),
                "metadata": [{"even": i % 2 == 0} for i in range(start, start + 1_000)],
            }
            assert c.post("/v1/collections/c/vectors", json=body).status_code == 200
            for i in (start, start + 501, start + 999):  # this batch, straight after its write
                query = {"vector": base64.b64encode(x[i].tobytes()).decode()}
                hits = c.post("/v1/collections/c/search", json={"query": query, "k": 3}).json()
                assert hits["results"][0]["id"] == f"v{i}"
                even = {"query": query, "k": 3, "filter": {"even": True}, "include": []}
                found = c.post("/v1/collections/c/search", json=even).json()
                assert all(int(h["id"][1:]) % 2 == 0 for h in found["results"])
                assert (found["results"][0]["id"] == f"v{i}") == (i % 2 == 0)
        assert c.get("/v1/collections/c").json()["index"]["kind"] == "hnsw"
        unmerged = held[-1]._pending  # the rows written but not in the graph
        assert unmerged() == 3_000  # the graph is still empty: every hit came from the delta
        assert c.post("/v1/collections/c/flush").status_code == 200
        assert unmerged() == 0
        query = {"vector": base64.b64encode(x[1_234].tobytes()).decode()}
        hits = c.post("/v1/collections/c/search", json={"query": query, "k": 1}).json()
        assert hits["results"][0]["id"] == "v1234"
