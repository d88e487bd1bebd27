"""Filtered search: latency, recall@10 and short answers by selectivity, in-process.

    python bench/bench_filters.py [--n 200000] [--dim 384] [--queries 200] [--quick]

``--n`` unit vectors of ``--dim`` around 100 Gaussian centres (seeded, as bench_peers.py),
each with metadata ``{"bucket": i % 100, "tag": "t<i % 1000>"}``, go into one ``auto``
collection through the service layer (``items.ingest_vectors`` in batches of 1,000, then
``flush``). Held-out queries search it unfiltered and with filters that pass 50 %, 10 %, 1 %
and 0.1 % of the items; for each: p50 and p99 of a whole ``search`` call, single-query QPS,
recall@10 against exact search over the matching items, answers with fewer than 10 hits, and
the strategy the planner names. Beside it, the cost of evaluating the filter alone: in SQL
(the reference the payload index is tested against, and what every filtered search ran
before it) and in the payload index. Writes the "filters" section of bench/RESULTS.md;
``--quick`` (20,000 vectors) only prints.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from latentspace.service import collections, items, lifecycle
from latentspace.service import search as search_module
from latentspace.service.context import Context
from latentspace.settings import Settings
from latentspace.store import lookups
from latentspace.store.filters import validate_filter
from latentspace.store.payload import PayloadIndex
from results import machine, write_section

K = 10
FILTERS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "50 %": {"bucket": {"$lt": 50}},
    "10 %": {"bucket": {"$lt": 10}},
    "1 %": {"bucket": 7},
    "0.1 %": {"tag": "t7"},
}


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    # The data of bench_peers.py: 100 fixed centres, samples (and queries) drawn around them.
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(100, dim)).astype(np.float32)
    x = centres[rng.integers(0, 100, n)] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def metadata(i: int) -> dict[str, Any]:
    return {"bucket": i % 100, "tag": f"t{i % 1000}"}


def mask_of(spec: dict[str, Any] | None, n: int) -> np.ndarray:
    i = np.arange(n)
    if spec is None:
        return np.ones(n, dtype=bool)
    if "tag" in spec:
        return i % 1000 == 7
    bucket = spec["bucket"]
    return i % 100 < bucket["$lt"] if isinstance(bucket, dict) else i % 100 == bucket


def timed(call: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def run(ctx: Context, x: np.ndarray, queries: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    collection = collections.get(ctx, "bench")
    payload_index = PayloadIndex()  # the same metadata, to time a filter's first evaluation
    payload_index.upsert((i, metadata(i)) for i in range(len(x)))
    for label, spec in FILTERS.items():
        mask = mask_of(spec, len(x))
        allowed = np.flatnonzero(mask)
        truth = allowed[np.argsort(-(queries @ x[allowed].T), axis=1)[:, :K]]
        answers: list[list[int]] = []
        strategies: set[str] = set()

        def one(q: np.ndarray, spec: dict[str, Any] | None = spec) -> search_module.SearchAnswer:
            query = search_module.Query(
                terms=[search_module.QueryTerm(vector=q)], k=K, filter=spec, explain=True
            )
            return search_module.search(ctx, "bench", query)

        for q in queries[:20]:  # warm: caches, the payload index's first build
            one(q)
        latencies = []
        for q in queries:
            started = time.perf_counter()
            answer = one(q)
            latencies.append((time.perf_counter() - started) * 1000)
            answers.append([int(h.id[1:]) for h in answer.hits])
            strategies.add(answer.strategy or "-")
        recall = np.mean(
            [len(set(a) & set(t.tolist())) / K for a, t in zip(answers, truth, strict=True)]
        )
        short = sum(len(a) < min(K, len(allowed)) for a in answers)
        sql = payload = float("nan")
        if spec is not None:
            checked = validate_filter(spec)

            def in_sql(checked: dict[str, Any] = checked) -> None:
                with ctx.sessions() as session:
                    lookups.filter_item_ids(session=session, collection=collection, spec=checked)

            sql = statistics.median(timed(in_sql, 5))
            payload = statistics.median(
                timed(lambda c=checked: payload_index.evaluate(c, cached=False), 20)
            )
        rows.append(
            {
                "filter": label,
                "matched": int(mask.sum()),
                "p50": percentile(latencies, 50),
                "p99": percentile(latencies, 99),
                "qps": len(latencies) / (sum(latencies) / 1000),
                "recall": float(recall),
                "short": short,
                "strategy": ", ".join(sorted(strategies)),
                "sql_ms": sql,
                "payload_ms": payload,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.n
    x = clustered(n, args.dim, seed=0)
    queries = clustered(args.queries, args.dim, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        ctx = lifecycle.start(settings)
        try:
            collections.create(ctx, "bench", dim=args.dim)
            started = time.perf_counter()
            for s in range(0, n, 1000):
                part = range(s, min(n, s + 1000))
                items.ingest_vectors(
                    ctx,
                    "bench",
                    x[s : part.stop],
                    ids=[f"v{i}" for i in part],
                    metadata=[metadata(i) for i in part],
                )
            stats = collections.save(ctx, "bench")
            ingest = n / (time.perf_counter() - started)
            print(f"ingest {ingest:,.0f} vectors/s; index {stats.index_kind}", flush=True)
            rows = run(ctx, x, queries)
        finally:
            lifecycle.stop(ctx)
        # a restart as a server makes it: ready once indexes are open, caches warmed after
        started = time.perf_counter()
        ctx = lifecycle.start(settings, warm=True)
        ready = time.perf_counter() - started
        assert ctx.warmer is not None
        ctx.warmer.wait()
        warmed = time.perf_counter() - started
        lifecycle.stop(ctx, save=False)
    load = os.getloadavg()
    table = [
        "| filter | matched | p50 ms | p99 ms | QPS | recall@10 | short | strategy | filter in "
        "SQL ms | in payload index ms |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        sql = "" if r["sql_ms"] != r["sql_ms"] else f"{r['sql_ms']:,.1f}"
        payload = "" if r["payload_ms"] != r["payload_ms"] else f"{r['payload_ms']:,.2f}"
        table.append(
            f"| {r['filter']} | {r['matched']:,} | {r['p50']:.2f} | {r['p99']:.2f} | "
            f"{r['qps']:,.0f} | {r['recall']:.3f} | {r['short']} | {r['strategy']} | {sql} | "
            f"{payload} |"
        )
    body = "\n".join(
        [
            "## Filtered search by selectivity (`bench/bench_filters.py`)",
            "",
            f"{date.today()}, {machine()}; load average {load[0]:.2f} at the end.",
            f"{n:,} × {args.dim} clustered unit vectors, `auto` index ({stats.index_kind}), "
            f"{args.queries} held-out queries one at a time through the service layer "
            f"(in-process, no HTTP); ingest {ingest:,.0f} vectors/s including `flush`. Recall@10 "
            "against exact search over the matching items; *short*: answers with fewer than "
            "min(10, matched) hits. The last two columns time the filter alone: in SQL (what "
            "each filtered search ran before the payload index) and in the payload index, "
            "evaluated afresh (a filter asked again before the next write is answered from "
            "the index's cache of its last 64 answers, as the search columns show).",
            f"A restart (`lifecycle.start`, as the server's lifespan runs it) was ready in "
            f"{ready:.1f} s; its background thread had filled the hit cache and built the "
            f"payload index {warmed:.1f} s after the start.",
            "",
            *table,
        ]
    )
    print(body)
    if not args.quick:
        write_section("filters", body)


if __name__ == "__main__":
    main()
