"""Work the Ray tests run in a subprocess inside a loopback-only network namespace.

    python -m tests.ray_jobs shards DIR

prints one JSON line of what it measured; ``tests/test_ray.py`` asserts on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

N, DIM, K, QUERIES = 3000, 16, 10, 100


def exact_top(x: np.ndarray, q: np.ndarray, k: int, keep: np.ndarray | None = None) -> list[int]:
    scores = x @ q
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    return [int(i) for i in order if np.isfinite(scores[i])]


def shards(root: Path) -> dict[str, Any]:
    """Two Serve shards behind the HTTP API, against exact search on the same vectors."""
    import ray
    from fastapi.testclient import TestClient

    from latentspace.api import create_app
    from latentspace.index import FaissIndex, IndexSpec
    from latentspace.service import lifecycle
    from latentspace.settings import ClusterSettings, EncoderSettings, Settings

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, DIM))
    x = centres[rng.integers(0, 30, N)] + 0.3 * rng.normal(size=(N, DIM))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    q = x[rng.choice(N, QUERIES, replace=False)] + 0.05 * rng.normal(size=(QUERIES, DIM))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    settings = Settings(
        data_dir=root / "data",
        auth="off",
        encoder=EncoderSettings(device="cpu", decode_workers=0),
        cluster=ClusterSettings(shards=2, shard_cpus=0.5),
    )
    out: dict[str, Any] = {}
    with TestClient(create_app(settings, warm=False)) as c:
        for kind in ("flat", "hnsw"):
            r = c.post("/v1/collections", json={"name": kind, "dim": DIM, "index": kind})
            assert r.status_code == 201, r.text
            for lo in range(0, N, 1000):
                items = [
                    {"id": f"v{i}", "vector": x[i].tolist(), "metadata": {"g": i % 10}}
                    for i in range(lo, lo + 1000)
                ]
                r = c.post(f"/v1/collections/{kind}/items", json={"items": items})
                assert r.status_code == 200, r.text

        def ids(kind: str, v: np.ndarray, **extra: Any) -> list[int]:
            body = {"query": {"vector": v.tolist()}, "k": K, **extra}
            r = c.post(f"/v1/collections/{kind}/search", json=body)
            assert r.status_code == 200, r.text
            return [int(h["id"][1:]) for h in r.json()["results"]]

        truth = [exact_top(x, v, K) for v in q]
        out["flat_same_top10"] = sum(ids("flat", v) == t for v, t in zip(q, truth, strict=True))
        out["hnsw_recall_sharded"] = float(
            np.mean([len(set(ids("hnsw", v)) & set(t)) / K for v, t in zip(q, truth, strict=True)])
        )
        local = FaissIndex(IndexSpec("hnsw", "cosine").with_defaults(N, DIM), DIM)
        local.add(np.arange(N, dtype=np.int64), x)
        found = local.search(q, K).ids
        out["hnsw_recall_local"] = float(
            np.mean([len(set(found[i].tolist()) & set(t)) / K for i, t in enumerate(truth)])
        )
        group = np.arange(N) % 10 == 3
        out["filter_same"] = sum(
            ids("flat", v, filter={"g": 3}) == exact_top(x, v, K, group) for v in q[:20]
        )
        out["offset_same"] = sum(
            ids("flat", v, offset=10) == exact_top(x, v, 2 * K)[K:] for v in q[:20]
        )
        out["stats"] = c.get("/v1/collections/flat").json()
        # a write through the API is searchable at once (every shard caught up before it
        # returned), and so is a delete
        top = exact_top(x, q[0], 1)[0]
        r = c.delete(f"/v1/collections/flat/items/v{top}")
        seq = int(r.headers["x-latentspace-seq"])
        out["deleted_gone"] = top not in ids("flat", q[0], consistency={"min_seq": seq})
        r = c.post(
            "/v1/collections/flat/items", json={"items": [{"id": "v9999", "vector": q[1].tolist()}]}
        )
        out["inserted_first"] = ids("flat", q[1])[0] == 9999
    # a broad filter (a post-filter predicate) is applied after the merge
    ctx = lifecycle.start(settings)
    try:
        from sqlalchemy import select

        from latentspace.service import collections
        from latentspace.store.tables import ItemRow

        row = collections.get(ctx, "hnsw")
        with ctx.sessions() as session:
            pairs = session.execute(
                select(ItemRow.id, ItemRow.external_id).where(ItemRow.collection_id == row.id)
            ).all()
        position = {int(i): int(e[1:]) for i, e in pairs}
        allowed = np.array([i for i, p in position.items() if p % 2 == 0], dtype=np.int64)
        even = ctx.live.indexes.search(row, q[:20], K, predicate=lambda a: np.isin(a, allowed))
        keep = np.arange(N) % 2 == 0
        got = [[position[int(i)] for i in even.ids[r] if i >= 0] for r in range(20)]
        out["predicate_recall"] = float(
            np.mean([len(set(g) & set(exact_top(x, q[r], K, keep))) / K for r, g in enumerate(got)])
        )
        out["predicate_only_even"] = all(p % 2 == 0 for g in got for p in g)
    finally:
        lifecycle.stop(ctx)
    return out


if __name__ == "__main__":
    job, folder = sys.argv[1], Path(sys.argv[2])
    result = {"shards": shards}[job](folder)
    sys.stdout.write(json.dumps(result) + "\n")
