"""Vector-search RPS of `latentspace serve --workers N`: one worker against two, same data.

    python bench/bench_workers.py [--n 100000] [--seconds 10] [--warmup 2] [--rounds 2]
                                  [--workers 1 2] [--data-dir DIR] [--quick]

Loads ``--n`` 64-d tiny-shapes vectors (HNSW) in-process with ``bench_http.load``, then per
round starts ``latentspace serve --workers N`` for each N (the order alternates between
rounds), on one port and one data directory, and drives it with bench_http's closed-loop
client: 1, 8 and 64 keep-alive connections, each connection its own TCP stream, so the kernel
spreads them over the workers' shared socket. Every request is a vector search with k = 10
(no filter); a non-2xx answer fails the run. "cores busy" is the whole machine's CPU while
recorded (server workers plus the load generator, which shares the cores). Writes the
"workers" section of bench/RESULTS.md; ``--quick`` (5,000 items, 1 s cells) only prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from bench_http import QUERIES, Connection, K, answers, clustered, code_state, cpu_seconds, load

CLIENTS = (1, 8, 64)


@dataclass
class Cell:
    """One (workers, clients) cell, pooled over rounds."""

    workers: int
    clients: int
    latencies: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)
    window: float = 0.0
    busy: float = 0.0
    errors: int = 0


@contextmanager
def workers(data_dir: Path, n: int) -> Iterator[str]:
    """``latentspace serve --workers n`` on a free loopback port; its URL once every worker
    answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "LATENTSPACE_DATA_DIR": str(data_dir),
        "LATENTSPACE_AUTH": "off",
        "LATENTSPACE_SERVER__MAX_QUEUE": "128",
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "latentspace.cli", "serve", "--port", str(port)]
    cmd += ["--workers", str(n), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 600
    try:
        # each new connection may land on any worker: ask until 4n in a row say ready
        streak = 0
        while streak < 4 * n:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve --workers {n} did not start ({proc.returncode})")
            streak = streak + 1 if answers(url + "/readyz") else 0
            time.sleep(0.05 if streak else 0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=120)


async def drive(
    cell: Cell, url: str, bodies: Sequence[bytes], warmup: float, seconds: float
) -> None:
    """One round of closed-loop load from ``cell.clients`` connections, added to ``cell``."""
    latencies: list[float] = []
    errors, recording, stopping = 0, False, False

    async def client(i: int) -> None:
        nonlocal errors
        connection = Connection(url + "/v1/collections/bench/search")
        while not stopping:
            started = time.perf_counter()
            status = await connection.post(bodies[i % len(bodies)])
            i += cell.clients
            if recording:
                latencies.append(time.perf_counter() - started)
                errors += not 200 <= status < 300
        connection.close()

    tasks = [asyncio.create_task(client(i)) for i in range(cell.clients)]
    await asyncio.sleep(warmup)
    recording = True
    busy0, t0 = cpu_seconds(0), time.perf_counter()
    await asyncio.sleep(seconds)
    recording, stopping = False, True
    window, busy = time.perf_counter() - t0, cpu_seconds(0) - busy0
    await asyncio.gather(*tasks)
    cell.latencies += latencies
    cell.rounds.append(len(latencies) / window)
    cell.window += window
    cell.busy += busy
    cell.errors += errors
    print(f"  {cell.workers} worker(s) {cell.clients:>2} clients {cell.rounds[-1]:7,.0f} req/s")
    assert errors == 0, f"{errors} failed requests"


def report(args: argparse.Namespace, cells: dict[tuple[int, int], Cell], minutes: float) -> str:
    lines = [
        "## Workers: one against two (`bench/bench_workers.py`)",
        "",
        f"Run {date.today().isoformat()} on a {os.cpu_count()}-core CPU (no GPU), code "
        f"{code_state()}; whole run {minutes:.1f} min. Reproduce: "
        "`.venv/bin/python bench/bench_workers.py`.",
        "",
        f"{args.n:,} items × 64-d (tiny-shapes, HNSW), vector search k = {K} cycling through "
        f"{QUERIES} queries; `latentspace serve --workers N` on one port and one data "
        f"directory; closed loop, one keep-alive connection per client; {args.rounds} rounds "
        f"(order alternating) of {args.warmup:g} s warm-up + {args.seconds:g} s recorded, "
        'pooled. The load generator runs on the same cores; "cores busy" is the whole '
        "machine's CPU while recorded.",
        "",
        "| workers | clients | RPS | RPS per round | p50 ms | p99 ms | errors | cores busy |",
        "|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for (n, clients), cell in sorted(cells.items()):
        lat = np.array(cell.latencies) * 1000
        rounds = " / ".join(f"{r:,.0f}" for r in cell.rounds)
        lines.append(
            f"| {n} | {clients} | {len(lat) / cell.window:,.0f} | {rounds} | "
            f"{np.percentile(lat, 50):.2f} | {np.percentile(lat, 99):.2f} | {cell.errors} | "
            f"{cell.busy / cell.window:.2f} |"
        )
    lines.append("")
    counts = sorted({n for n, _ in cells})
    if len(counts) == 2:
        one, two = counts
        for clients in CLIENTS:
            a, b = cells.get((one, clients)), cells.get((two, clients))
            if a and b:
                ratio = (len(b.latencies) / b.window) / (len(a.latencies) / a.window)
                lines.append(
                    f"- {clients} client(s): {two} workers did {ratio:.2f}× the RPS of {one}."
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n, args.seconds, args.warmup, args.rounds = 5000, 1.0, 0.5, 1
    from results import write_section

    started = time.perf_counter()
    tmp = None if args.data_dir else tempfile.mkdtemp(prefix="bench-workers-")
    data_dir = args.data_dir or Path(str(tmp))
    cells: dict[tuple[int, int], Cell] = {}
    try:
        print(f"loading {args.n:,} items into {data_dir}", flush=True)
        x, _ = load(data_dir, args.n, "hnsw")
        queries = clustered(QUERIES, x.shape[1], seed=1)
        bodies = [
            json.dumps({"query": {"vector": [round(float(v), 6) for v in q]}, "k": K}).encode()
            for q in queries
        ]
        for round_ in range(args.rounds):
            order = args.workers if round_ % 2 == 0 else list(reversed(args.workers))
            for n in order:
                with workers(data_dir, n) as url:
                    for clients in CLIENTS:
                        cell = cells.setdefault((n, clients), Cell(n, clients))
                        asyncio.run(drive(cell, url, bodies, args.warmup, args.seconds))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    body = report(args, cells, (time.perf_counter() - started) / 60)
    print(f"\n{body}")
    if args.quick:
        print("--quick: bench/RESULTS.md left as it was")
    else:
        write_section("workers", body)
        print("wrote the 'workers' section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
