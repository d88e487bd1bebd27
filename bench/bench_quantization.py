"""Compact vectors: recall, latency, memory and bytes of float32, fp16, sq8 and binary codes.

    python bench/bench_quantization.py [--n 1000000] [--dim 384] [--queries 200]
        [--kind hnsw] [--codes none,fp16,sq8,binary] [--rescore 1,2,3,4,8,16,32] [--quick]

The same seeded, clustered unit vectors as bench_scale.py (1,000 Gaussian centres) are
written once to a raw float32 file. Each quantization then runs in a fresh ``spawn``ed
child process, so its memory is its own: the child builds a ``FaissIndex`` of ``--kind``
over the codes as a rebuild from SQL does (rows added 50,000 at a time with FAISS's
parallel add, room for all of them taken after the first batch), saves it (index bytes:
the saved file), and answers ``--queries`` held-out queries one at a time (20 unrecorded
warm-up queries first) at every ``--rescore`` factor: candidates fetched per wanted hit,
rescored exactly against the float32 rows read from the raw file (``np.memmap``, what the
server reads from its SQL store). Recall@10 is against exact search over all rows.
The build reads the rows (no map), so the mapped file's pages count only once queries
touch them.

Memory, per child: ``RssAnon`` after the build (the index: codes, graph, id maps, and the
interpreter with NumPy and FAISS), its peak (``VmHWM``) across build and save, and
``RssFile`` after the queries (pages of the raw file the rescoring touched: page cache the
OS may drop). Writes the "quantization" section of bench/RESULTS.md; ``--quick`` (50,000
vectors, 50 queries) only prints.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from results import machine, write_section
from scale_peers import read_rows, rows

BATCH = 50_000


def status_mb(field: str) -> float:
    """A field of /proc/self/status (``RssAnon``, ``VmHWM``, ...), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_data(path: Path, n: int, dim: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The raw float32 file of ``n`` rows; held-out queries and their exact top 10."""
    held_out = rows(n, n + queries, dim, seed=1)  # the same distribution, never stored
    best = np.full((queries, 10), -np.inf, np.float32)
    best_ids = np.full((queries, 10), -1, np.int64)
    with path.open("wb") as f:
        for start in range(0, n, BATCH):
            x = rows(start, min(n, start + BATCH), dim, seed=0)
            f.write(x.tobytes())
            scores = held_out @ x.T
            both = np.concatenate([best, scores], axis=1)
            ids = np.concatenate(
                [best_ids, np.arange(start, start + x.shape[0])[None].repeat(queries, 0)], axis=1
            )
            top = np.argsort(-both, axis=1)[:, :10]
            best, best_ids = np.take_along_axis(both, top, 1), np.take_along_axis(ids, top, 1)
    return held_out, best_ids


def child(
    data: str,
    n: int,
    dim: int,
    kind: str,
    quantization: str,
    factors: list[int],
    warm: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    conn: Connection,
) -> None:
    from latentspace.index import FaissIndex, IndexSpec, SearchParams
    from latentspace.index.managed import fill
    from latentspace.index.spec import training_minimum

    stored = np.memmap(data, dtype=np.float32, mode="r", shape=(n, dim))
    baseline = status_mb("RssAnon")
    params = {} if quantization == "none" else {"quantization": quantization}
    index = FaissIndex(IndexSpec(kind, "cosine", params), dim)
    started = time.perf_counter()
    batches = (  # read, not mapped: the build's peak is the index's
        (
            np.arange(start, min(n, start + BATCH)),
            read_rows(Path(data), start, min(n, start + BATCH), dim),
        )
        for start in range(0, n, BATCH)
    )
    fill(index, batches, training_minimum(index.spec), n)  # what a rebuild from SQL does
    build_s = time.perf_counter() - started
    anon = status_mb("RssAnon")
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        index.save(Path(folder))
        save_s = time.perf_counter() - started
        index_bytes = sum(
            f.stat().st_size for f in Path(folder).iterdir() if f.name.startswith("index.")
        )
    peak = status_mb("VmHWM")
    index.rows_from(lambda ids: {int(i): stored[int(i)] for i in ids.tolist()})
    out: dict[str, Any] = {
        "build_s": build_s,
        "save_s": save_s,
        "index_mb": index_bytes / 2**20,
        "anon_mb": anon,
        "baseline_mb": baseline,
        "peak_mb": peak,
        "cells": {},
    }
    for factor in factors if quantization != "none" else [1]:
        knobs = SearchParams(rescore=factor)
        for q in warm:
            index.search(q[None], 10, params=knobs)
        times, found = [], []
        for q in queries:
            t = time.perf_counter()
            found.append(index.search(q[None], 10, params=knobs).ids[0])
            times.append(time.perf_counter() - t)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
        out["cells"][factor] = {
            "recall": float(recall),
            "p50_ms": 1000 * float(np.median(times)),
            "qps": len(times) / sum(times),
        }
    out["file_mb"] = status_mb("RssFile")
    conn.send(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--kind", default="hnsw")
    parser.add_argument("--codes", default="none,fp16,sq8,binary")
    parser.add_argument("--rescore", default="1,2,3,4,8,16,32")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, count = (50_000, 50) if args.quick else (args.n, args.queries)
    factors = [int(f) for f in args.rescore.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "rows.f32"
        queries, truth = write_data(data, n, args.dim, count + 20)
        warm, queries, truth = queries[:20], queries[20:], truth[20:]
        results = {}
        for quantization in args.codes.split(","):
            load = os.getloadavg()[0]
            ours, theirs = mp.get_context("spawn").Pipe(duplex=False)
            proc = mp.get_context("spawn").Process(
                target=child,
                args=(
                    str(data),
                    n,
                    args.dim,
                    args.kind,
                    quantization,
                    factors,
                    warm,
                    queries,
                    truth,
                    theirs,
                ),
            )
            proc.start()
            results[quantization] = ours.recv() | {"load": (load, os.getloadavg()[0])}
            proc.join()
            print(quantization, results[quantization], flush=True)
    body = report(results, n, args.dim, args.kind, count)
    print(body)
    if not args.quick:
        write_section("quantization", body)


def report(results: dict[str, dict[str, Any]], n: int, dim: int, kind: str, count: int) -> str:
    none = results.get("none")
    lines = [
        f"## Compact vectors: {n:,} × {dim}, {kind}",
        "",
        f"`python bench/bench_quantization.py --n {n} --dim {dim} --kind {kind}` on {machine()}.",
        f"{count} held-out queries, k = 10, one at a time; recall@10 against exact search. "
        "Rescore f: f × 10 candidates from the codes, rescored against float32 rows read "
        "from a memory-mapped file. RSS anon: the child process after the build (interpreter, "
        "NumPy and FAISS included); peak: across build and save.",
        "",
        "| codes | rescore | recall@10 | p50 ms | QPS | index MB | × float | RSS anon MB "
        "| peak MB | build s | save s | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for quantization, r in results.items():
        ratio = r["index_mb"] / none["index_mb"] if none else float("nan")
        for factor, cell in r["cells"].items():
            lines.append(
                f"| {quantization} | {factor} | {cell['recall']:.3f} | {cell['p50_ms']:.2f} | "
                f"{cell['qps']:.0f} | {r['index_mb']:.0f} | {ratio:.2f} | {r['anon_mb']:.0f} | "
                f"{r['peak_mb']:.0f} | {r['build_s']:.0f} | {r['save_s']:.1f} | "
                f"{r['load'][0]:.2f}–{r['load'][1]:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
