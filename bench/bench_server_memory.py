"""A server's memory at scale, per quantization: steady, and its peaks while it saves,
shuts down and rebuilds from SQL; with search latency and recall over HTTP.

    python bench/bench_server_memory.py [--n 1000000] [--dim 384] [--codes none,sq8]
        [--queries 200] [--no-reindex] [--quick]

For each quantization, a fresh ``latentspace serve`` (bench_scale.py's ``Server``: a
subprocess on 127.0.0.1, its own data directory) takes the same seeded, clustered ``--n``
unit vectors as bench_scale.py (``POST …/vectors`` in batches of 1,000 into an ``auto``
collection created with that ``quantization``), then ``flush``. Measured from the server's
/proc/PID/status (``VmRSS``; peaks as ``VmHWM`` after writing 5 to /proc/PID/clear_refs,
which resets it):

- steady: RSS after the flush and 200 searches;
- flush: the peak while 1,000 more vectors are written and ``flush`` merges, measures
  recall (100 stored vectors against the truth streamed from SQL) and saves;
- shutdown: the peak between SIGTERM and exit (the last reading before the process goes);
- rebuild from SQL: the index files removed, a new server builds the index from SQL while
  it opens; its peak once ``/readyz`` answers (against the same server's steady RSS after
  200 searches);
- reindex: ``POST …/reindex`` on that server (the old index serves until the swap, so both
  are held for a moment).

Searches: ``--queries`` held-out vectors one at a time over keep-alive HTTP (20 unrecorded
warm-ups first), recall@10 against exact search. Writes the "server memory" section of
bench/RESULTS.md; ``--quick`` (20,000 vectors, 50 queries) only prints.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import DATA_SEED, QUERY_SEED, Server
from results import machine, write_section
from scale_peers import read_rows, rows

NAME, BATCH, CHUNK = "memory", 1_000, 10_000


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def write_data(path: Path, n: int, dim: int, queries: np.ndarray) -> np.ndarray:
    """The raw float32 rows (and 1,000 spare for the flush) and each query's exact top 10."""
    best = np.full((len(queries), 0), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), 0), np.int64)
    with path.open("wb") as out:
        for start in range(0, n + BATCH, CHUNK):
            x = rows(start, min(n + BATCH, start + CHUNK), dim, DATA_SEED)
            out.write(x.astype("<f4").tobytes())
            if start >= n:
                continue
            x = x[: max(0, min(len(x), n - start))]
            s = np.concatenate([best, queries @ x.T], axis=1)
            i = np.concatenate(
                [best_ids, np.tile(np.arange(start, start + len(x)), (len(queries), 1))], axis=1
            )
            top = np.argsort(-s, axis=1)[:, :10]
            best, best_ids = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return best_ids


def post_rows(c: httpx.Client, data: Path, start: int, stop: int, dim: int) -> None:
    for first in range(start, stop, BATCH):
        last = min(stop, first + BATCH)
        body = {
            "ids": [f"v{i}" for i in range(first, last)],
            "vectors": base64.b64encode(read_rows(data, first, last, dim).tobytes()).decode(),
        }
        c.post(f"/v1/collections/{NAME}/vectors", json=body).raise_for_status()


def searches(server: Server, queries: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    conn = server.connection()
    latencies, hits = [], []
    for n, v in enumerate(queries):
        body = {
            "query": {"vector": base64.b64encode(v.astype("<f4").tobytes()).decode()},
            "k": 10,
            "include": [],
        }
        started = time.perf_counter()
        conn.request(
            "POST",
            f"/v1/collections/{NAME}/search",
            json.dumps(body),
            {"content-type": "application/json"},
        )
        answer = json.loads(conn.getresponse().read())
        if n >= 20:
            latencies.append(time.perf_counter() - started)
            hits.append([int(h["id"][1:]) for h in answer["results"]])
    conn.close()
    recall = np.mean(
        [len(set(a) & set(t.tolist())) / 10 for a, t in zip(hits, truth[20:], strict=True)]
    )
    return {"p50_ms": 1000 * float(np.median(latencies)), "recall": float(recall)}


def run(
    reindex: bool,
    folder: Path,
    data: Path,
    n: int,
    dim: int,
    quantization: str,
    queries: np.ndarray,
    truth: np.ndarray,
) -> dict[str, Any]:
    out: dict[str, Any] = {"load": [os.getloadavg()[0]]}
    server = Server(folder / quantization)
    server.start()
    assert server.proc is not None
    pid = server.proc.pid
    with httpx.Client(base_url=server.base, timeout=None) as c:
        body = {"name": NAME, "dim": dim, "index": "auto", "quantization": quantization}
        c.post("/v1/collections", json=body).raise_for_status()
        started = time.perf_counter()
        post_rows(c, data, 0, n, dim)
        index = c.post(f"/v1/collections/{NAME}/flush").raise_for_status().json()["index"]
        out["ingest_per_s"] = n / (time.perf_counter() - started)
        out |= {
            "kind": index["kind"],
            "quantization": index["quantization"],
            "index_mb": index["bytes"] / 2**20,
            "saved_recall": index["recall_at_10"],
        }
        out |= searches(server, queries, truth)
        out["steady_mb"] = status_mb(pid, "VmRSS")
        reset_peak(pid)
        post_rows(c, data, n, n + BATCH, dim)
        c.post(f"/v1/collections/{NAME}/flush").raise_for_status()
        out["flush_peak_mb"] = status_mb(pid, "VmHWM")
    reset_peak(pid)
    server.proc.send_signal(signal.SIGTERM)
    last = 0.0
    while server.proc.poll() is None:
        try:
            reading = status_mb(pid, "VmHWM")
        except (FileNotFoundError, ProcessLookupError):
            break
        last = reading if reading == reading else last  # an exiting process has none
        time.sleep(0.01)
    out["shutdown_peak_mb"] = last
    server.proc = None
    shutil.rmtree(folder / quantization / "indexes")  # the next start rebuilds from SQL
    out["rebuild_ready_s"] = server.start()
    assert server.proc is not None
    pid = server.proc.pid
    out["rebuild_peak_mb"] = status_mb(pid, "VmHWM")
    searches(server, queries, truth)
    out["rebuilt_steady_mb"] = status_mb(pid, "VmRSS")
    out["reindex_peak_mb"] = float("nan")
    if reindex:
        reset_peak(pid)
        with httpx.Client(base_url=server.base, timeout=None) as c:
            c.post(f"/v1/collections/{NAME}/reindex").raise_for_status()
        out["reindex_peak_mb"] = status_mb(pid, "VmHWM")
    server.stop()
    out["load"].append(os.getloadavg()[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--codes", default="none,sq8")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-reindex", action="store_true", help="skip the reindex peak")
    args = parser.parse_args()
    n, count = (20_000, 50) if args.quick else (args.n, args.queries)
    queries = rows(0, count + 20, args.dim, QUERY_SEED)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "rows.f32"
        truth = write_data(data, n, args.dim, queries)
        for quantization in args.codes.split(","):
            results[quantization] = run(
                not args.no_reindex, folder, data, n, args.dim, quantization, queries, truth
            )
            print(quantization, results[quantization], flush=True)
    body = report(results, n, args.dim, count)
    print(body)
    if not args.quick:
        write_section("server memory", body)


def report(results: dict[str, dict[str, Any]], n: int, dim: int, count: int) -> str:
    lines = [
        f"## Server memory: {n:,} × {dim}",
        "",
        f"`python bench/bench_server_memory.py --n {n} --dim {dim}` on {machine()}. RSS of the "
        "server process (MB); peaks are VmHWM after a reset, with their ratio to the steady "
        f"RSS; search: {count} held-out queries over HTTP, one at a time.",
        "",
        "| quantization | index | index MB | steady RSS | flush peak | shutdown peak "
        "| rebuild from SQL: peak / its steady | reindex peak | p50 ms | recall@10 | ingest/s "
        "| load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for q, r in results.items():
        steady = r["steady_mb"]
        lines.append(
            f"| {q} | {r['kind']} ({r['quantization']}) | {r['index_mb']:.0f} | {steady:.0f} | "
            f"{r['flush_peak_mb']:.0f} ({r['flush_peak_mb'] / steady:.2f}×) | "
            f"{r['shutdown_peak_mb']:.0f} ({r['shutdown_peak_mb'] / steady:.2f}×) | "
            f"{r['rebuild_peak_mb']:.0f} / {r['rebuilt_steady_mb']:.0f} "
            f"({r['rebuild_peak_mb'] / r['rebuilt_steady_mb']:.2f}×, "
            f"ready in {r['rebuild_ready_s']:.0f} s) | "
            f"{_peak(r['reindex_peak_mb'], steady)} | "
            f"{r['p50_ms']:.2f} | {r['recall']:.3f} | {r['ingest_per_s']:,.0f} | "
            f"{r['load'][0]:.2f}–{r['load'][1]:.2f} |"
        )
    return "\n".join(lines)


def _peak(mb: float, steady: float) -> str:
    return "not run" if mb != mb else f"{mb:.0f} ({mb / steady:.2f}×)"


if __name__ == "__main__":
    main()
