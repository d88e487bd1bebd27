"""What the Qdrant-compatible layer costs: upserts and queries through ``/qdrant`` against
the native API, on the same data, in one server.

    python bench/bench_qdrant.py [--n 20000] [--dim 384] [--queries 300] [--rounds 3]

One ``latentspace serve`` on 127.0.0.1 (SQLite + FAISS, keys off: loopback). ``--n``
clustered unit vectors (1,000 centres, as ``bench_scale.py``) with a payload
``{"bucket": i % 100, "tag": ...}``. Per round, each upsert path fills its own collection in
batches of 1,000:

- native: ``POST /v1/collections/{name}/items`` with ``{items: [{id, vector, metadata}]}``;
- qdrant, raw: ``PUT /qdrant/collections/{name}/points`` with ``{points: [{id, vector,
  payload}]}`` (the bodies of both raw paths are serialised before the clock starts, so they
  time the server);
- qdrant-client: ``QdrantClient.upsert`` with ``PointStruct``s, as an application calls it
  (the client's own model building and serialisation counted).

Then the native collection is flushed (the graph linked and saved) and ``--queries``
held-out queries, k = 10, one at a time on one keep-alive connection each, go through the
native search, the raw ``/qdrant`` query and ``QdrantClient.query_points``, unfiltered and
with a 1 % filter (``bucket == 7``; in Qdrant's syntax, ``match: {value: 7}``). Rounds
alternate the order of the paths. Writes the "qdrant" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import Server
from results import machine, write_section
from scale_peers import rows

BATCH, K, SEED = 1000, 10, 0


def payload(i: int) -> dict[str, Any]:
    return {"bucket": i % 100, "tag": f"t{i % 7}"}


def load() -> float:
    return os.getloadavg()[0]


def _ingest_raw(client: httpx.Client, method: str, path: str, bodies: list[bytes]) -> float:
    # Seconds to send every (already serialised) batch.
    started = time.perf_counter()
    for body in bodies:
        answer = client.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
        answer.raise_for_status()
    return time.perf_counter() - started


def _batches(data: np.ndarray, key: str, point: Callable[[int], dict[str, Any]]) -> list[bytes]:
    return [
        json.dumps({key: [point(i) for i in range(s, min(s + BATCH, len(data)))]}).encode()
        for s in range(0, len(data), BATCH)
    ]


def ingest_native(base: str, name: str, data: np.ndarray) -> float:
    with httpx.Client(base_url=base, timeout=None) as c:
        c.post("/v1/collections", json={"name": name, "dim": data.shape[1]}).raise_for_status()
        bodies = _batches(
            data,
            "items",
            lambda i: {"id": str(i), "vector": data[i].tolist(), "metadata": payload(i)},
        )
        return _ingest_raw(c, "POST", f"/v1/collections/{name}/items", bodies)


def ingest_qdrant_raw(base: str, name: str, data: np.ndarray) -> float:
    with httpx.Client(base_url=base + "/qdrant", timeout=None) as c:
        c.put(
            f"/collections/{name}", json={"vectors": {"size": data.shape[1], "distance": "Cosine"}}
        ).raise_for_status()
        bodies = _batches(
            data, "points", lambda i: {"id": i, "vector": data[i].tolist(), "payload": payload(i)}
        )
        return _ingest_raw(c, "PUT", f"/collections/{name}/points", bodies)


def ingest_qdrant_client(base: str, name: str, data: np.ndarray) -> float:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(url=base, prefix="qdrant", timeout=600)
    client.create_collection(name, models.VectorParams(size=data.shape[1], distance="Cosine"))
    started = time.perf_counter()
    for s in range(0, len(data), BATCH):
        points = [
            models.PointStruct(id=i, vector=data[i].tolist(), payload=payload(i))
            for i in range(s, min(s + BATCH, len(data)))
        ]
        client.upsert(name, points)
    seconds = time.perf_counter() - started
    client.close()
    return seconds


def timed(call: Callable[[np.ndarray], None], queries: np.ndarray) -> list[float]:
    for q in queries[:20]:  # warm-up
        call(q)
    out = []
    for q in queries:
        started = time.perf_counter()
        call(q)
        out.append(time.perf_counter() - started)
    return out


def query_paths(base: str, name: str) -> dict[str, Callable[[np.ndarray, bool], None]]:
    from qdrant_client import QdrantClient, models

    native = httpx.Client(base_url=base, timeout=60)
    raw = httpx.Client(base_url=base + "/qdrant", timeout=60)
    client = QdrantClient(url=base, prefix="qdrant", timeout=60)
    q_filter = {"must": [{"key": "bucket", "match": {"value": 7}}]}
    model_filter = models.Filter(
        must=[models.FieldCondition(key="bucket", match=models.MatchValue(value=7))]
    )

    def native_search(q: np.ndarray, filtered: bool) -> None:
        body: dict[str, Any] = {"query": {"vector": q.tolist()}, "k": K}
        if filtered:
            body["filter"] = {"bucket": 7}
        answer = native.post(f"/v1/collections/{name}/search", json=body)
        answer.raise_for_status()
        assert len(answer.json()["results"]) == K, answer.text

    def raw_query(q: np.ndarray, filtered: bool) -> None:
        body: dict[str, Any] = {"query": q.tolist(), "limit": K, "with_payload": True}
        if filtered:
            body["filter"] = q_filter
        answer = raw.post(f"/collections/{name}/points/query", json=body)
        answer.raise_for_status()
        assert len(answer.json()["result"]["points"]) == K, answer.text

    def client_query(q: np.ndarray, filtered: bool) -> None:
        points = client.query_points(
            name,
            query=q.tolist(),
            limit=K,
            query_filter=model_filter if filtered else None,
            with_payload=True,
        ).points
        assert len(points) == K

    return {"native": native_search, "qdrant, raw": raw_query, "qdrant-client": client_query}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = rows(0, args.n, args.dim, SEED)
    queries = rows(args.n, args.n + args.queries + 20, args.dim, SEED + 1)
    ingest = {
        "native": ingest_native,
        "qdrant, raw": ingest_qdrant_raw,
        "qdrant-client": ingest_qdrant_client,
    }
    loads = [load()]
    ingest_s: dict[str, list[float]] = {k: [] for k in ingest}
    query_s: dict[tuple[str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "data")
        server.start()
        try:
            for r in range(args.rounds):
                order = list(ingest) if r % 2 == 0 else list(reversed(ingest))
                for path in order:
                    name = f"{path.replace(', ', '-').replace(' ', '-')}-{r}"
                    ingest_s[path].append(ingest[path](server.base, name, data))
                    print(f"round {r}: {path} ingest {args.n / ingest_s[path][-1]:,.0f}/s")
                target = f"native-{r}"
                httpx.post(f"{server.base}/v1/collections/{target}/flush", timeout=None)
                paths = query_paths(server.base, target)
                for filtered in (False, True):
                    names = list(paths) if r % 2 == 0 else list(reversed(paths))
                    for path in names:
                        call = paths[path]
                        times = timed(lambda q, c=call, f=filtered: c(q, f), queries)
                        query_s.setdefault((path, filtered), []).extend(times)
                loads.append(load())
        finally:
            server.stop()
    write(args, ingest_s, query_s, loads)


def write(
    args: argparse.Namespace,
    ingest_s: dict[str, list[float]],
    query_s: dict[tuple[str, bool], list[float]],
    loads: list[float],
) -> None:
    from importlib.metadata import version

    lines = [
        "## Qdrant-compatible API: its cost against the native API (`bench/bench_qdrant.py`)",
        "",
        f"`python bench/bench_qdrant.py --n {args.n} --dim {args.dim} --queries {args.queries} "
        f"--rounds {args.rounds}` on {time.strftime('%Y-%m-%d')}: {machine()}; qdrant-client "
        f"{version('qdrant-client')}. "
        f"Load average (1 min) {' → '.join(f'{x:.2f}' for x in loads)} (start, after each "
        "round). One server, SQLite + FAISS; each upsert path fills its own collection in "
        "batches of 1,000 (the raw paths' bodies serialised before the clock; qdrant-client "
        "builds and serialises its own); queries, k = 10, one at a time on a keep-alive "
        "connection, all on the native path's flushed collection; rounds alternate the order.",
        "",
        "| path | upsert points/s (median of rounds) | × native |",
        "|---|---:|---:|",
    ]
    rate = {k: args.n / statistics.median(v) for k, v in ingest_s.items()}
    for path, value in rate.items():
        lines.append(f"| {path} | {value:,.0f} | {rate['native'] / value:.2f} |")
    lines += [
        "",
        "| path | filter | p50 ms | p99 ms | QPS | p50 × native |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (path, filtered), times in query_s.items():
        ms = np.array(times) * 1000
        base = np.percentile(np.array(query_s[("native", filtered)]) * 1000, 50)
        p50 = np.percentile(ms, 50)
        lines.append(
            f"| {path} | {'bucket = 7 (1 %)' if filtered else 'none'} | {p50:.2f} | "
            f"{np.percentile(ms, 99):.2f} | {1000 / ms.mean():.0f} | {p50 / base:.2f} |"
        )
    body = "\n".join(lines)
    print(body)
    write_section("qdrant", body)


if __name__ == "__main__":
    main()
