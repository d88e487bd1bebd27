"""HTTP search throughput and latency at 1, 8 and 64 clients, next to a no-op FastAPI endpoint.

    python bench/bench_http.py [--n 100000] [--seconds 10] [--warmup 2] [--index hnsw]
                               [--data-dir DIR] [--quick]

A collection of ``--n`` 64-d unit vectors (tiny-shapes model; 1000 Gaussian centres plus noise)
is loaded in-process through the service layer, then three single-worker uvicorn servers run,
one after the other, each in its own process on 127.0.0.1:

- a minimal FastAPI app whose ``POST /noop`` parses the JSON body and returns ``{"ok": true}``
  (the floor: what uvicorn + FastAPI cost per request on this machine), sent the same bodies
  as the vector search;
- latentspace with micro-batching on (the default): vector search, then text search;
- latentspace with micro-batching off (``LATENTSPACE_SEARCH__MICRO_BATCH=false``): vector search.

The load generator is this script's process: ``httpx.AsyncClient`` with as many keep-alive
HTTP/1.1 connections as clients, each client sending its next request as soon as the last one
answers (closed loop). Per cell: ``--warmup`` seconds unrecorded, then ``--seconds`` recorded;
every completed request's latency is kept. Any non-2xx answer or transport error fails the run.
The client shares the machine's cores with the server, so its CPU time is reported too.
Writes the "http" section of bench/RESULTS.md; ``--quick`` (5,000 items, 1 s cells) is a
smoke run that only prints.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLLECTION = "bench"
MODEL = "tiny-shapes"
K = 10
CONCURRENCY = (1, 8, 64)
COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "white", "black")
SHAPES = ("circle", "square", "triangle", "star")
QUERIES = 1000
BATCH = 5000
HEADERS = {"content-type": "application/json"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Cell:
    """One (endpoint, concurrency) measurement."""

    endpoint: str
    clients: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu: float  # cores busy in the server process over the recorded window
    client_cpu: float  # cores busy in this (load generator) process

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


# -- data ------------------------------------------------------------------------------------
def clustered(n: int, dim: int, seed: int, centers: int = 1000) -> np.ndarray:
    """``n`` unit float32 vectors: Gaussian clusters (fixed centres) plus noise."""
    means = np.random.default_rng(123).standard_normal((centers, dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    x = means[rng.integers(0, centers, n)] + 0.5 * rng.standard_normal((n, dim), np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def load(data_dir: Path, n: int, index: str) -> np.ndarray:
    """Fill ``data_dir`` with the collection (unless it already holds ``n`` items); its vectors."""
    from latentspace.service import LatentSpace
    from latentspace.settings import Settings
    from latentspace.store.repository import ItemInput

    space = LatentSpace.open(Settings(data_dir=data_dir, auth="off"))
    try:
        existing = {c.name for c in space.list_collections()}
        if COLLECTION in existing and space.count(COLLECTION) == n:
            print(f"reusing {n:,} items in {data_dir}", flush=True)
        else:
            if COLLECTION in existing:
                space.delete_collection(COLLECTION)
            space.create_collection(COLLECTION, model=MODEL, index=index)
        dim = space.collection(COLLECTION).dim
        x = clustered(n, dim, seed=0)
        started = time.perf_counter()
        for lo in range(space.count(COLLECTION), n, BATCH):
            space.upsert(
                COLLECTION,
                [
                    ItemInput(
                        external_id=f"v{i}",
                        kind="vector",
                        sha256=hashlib.sha256(f"bench-{i}".encode()).hexdigest(),
                        vector=x[i],
                        metadata={"n": i % 100},
                    )
                    for i in range(lo, min(n, lo + BATCH))
                ],
            )
            print(f"  loaded {min(n, lo + BATCH):,} in {time.perf_counter() - started:.0f} s")
    finally:
        space.close()  # saves the index, so the server loads it instead of rebuilding
    return x


# -- servers ---------------------------------------------------------------------------------
def serve(app_name: str, port: int) -> None:
    """Run one server in this process (the ``--serve`` mode of this script)."""
    import uvicorn
    from fastapi import FastAPI

    if app_name == "noop":
        app = FastAPI()

        @app.post("/noop")
        def noop(body: dict[str, Any]) -> dict[str, bool]:
            return {"ok": True}

    else:
        from latentspace.api import create_app
        from latentspace.settings import Settings

        app = create_app(Settings())  # data dir, auth and micro-batching from the environment
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(app_name: str, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """Start ``--serve app_name`` in a subprocess; yield (base URL, pid) once it answers."""
    port = free_port()
    cmd = [sys.executable, __file__, "--serve", app_name, "--port", str(port)]
    proc = subprocess.Popen(cmd, env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    probe = "/docs" if app_name == "noop" else "/readyz"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{app_name} server exited with {proc.returncode}")
            try:
                if httpx.get(base + probe, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{app_name} server did not start")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=120)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- load generator --------------------------------------------------------------------------
async def drive(
    url: str, bodies: Sequence[bytes], clients: int, warmup: float, seconds: float, pid: int
) -> tuple[list[float], int, float, float, float]:
    """Closed-loop load: (latencies s, errors, window s, server CPU s, client CPU s)."""
    latencies: list[float] = []
    errors = 0
    recording = stopping = False
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker(first: int) -> None:
            nonlocal errors
            i = first
            while not stopping:
                body = bodies[i % len(bodies)]
                i += clients
                started = time.perf_counter()
                try:
                    ok = (await client.post(url, content=body, headers=HEADERS)).is_success
                except httpx.HTTPError:
                    ok = False
                if recording:
                    latencies.append(time.perf_counter() - started)
                    errors += not ok
                elif not ok:
                    raise RuntimeError(f"request to {url} failed during warm-up")

        tasks = [asyncio.create_task(worker(i)) for i in range(clients)]
        await asyncio.sleep(warmup)
        recording = True
        cpu0, mine0, t0 = process_cpu(pid), own_cpu(), time.perf_counter()
        await asyncio.sleep(seconds)
        recording, stopping = False, True
        window = time.perf_counter() - t0
        cpu1, mine1 = process_cpu(pid), own_cpu()
        await asyncio.gather(*tasks)
    return latencies, errors, window, cpu1 - cpu0, mine1 - mine0


def measure(
    endpoint: str,
    url: str,
    bodies: Sequence[bytes],
    clients: int,
    pid: int,
    args: argparse.Namespace,
) -> Cell:
    lat, errors, window, server_s, client_s = asyncio.run(
        drive(url, bodies, clients, args.warmup, args.seconds, pid)
    )
    ms = np.asarray(lat) * 1000
    cell = Cell(
        endpoint,
        clients,
        len(lat),
        window,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        errors,
        server_s / window,
        client_s / window,
    )
    print(
        f"  {endpoint:<34} c={clients:<3} {cell.rps:8,.0f} req/s  p50 {cell.p50_ms:7.2f} ms  "
        f"p99 {cell.p99_ms:7.2f} ms  errors {errors}  CPU server {cell.server_cpu:.2f} "
        f"client {cell.client_cpu:.2f}",
        flush=True,
    )
    assert errors == 0, f"{errors} failed requests at {endpoint}, {clients} clients"
    return cell


# -- reporting -------------------------------------------------------------------------------
def table(cells: Sequence[Cell]) -> list[str]:
    lines = [
        "| endpoint | clients | RPS | p50 ms | p99 ms | errors | server CPU | client CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        lines.append(
            f"| {c.endpoint} | {c.clients} | {c.rps:,.0f} | {c.p50_ms:.2f} | {c.p99_ms:.2f} "
            f"| {c.errors} | {c.server_cpu:.2f} | {c.client_cpu:.2f} |"
        )
    return lines


def observations(cells: Sequence[Cell]) -> list[str]:
    """Ratios computed from this run's numbers (no judgement beyond them)."""
    rps = {(c.endpoint, c.clients): c.rps for c in cells}
    lines = []
    for clients in CONCURRENCY:
        noop = rps[("noop", clients)]
        on, off = rps[(ON, clients)], rps[(OFF, clients)]
        text = rps.get((TEXT, clients))
        line = (
            f"- {clients} client{'s' * (clients > 1)}: vector search (micro-batch on) "
            f"{on / noop:.0%} of no-op RPS, (off) {off / noop:.0%}"
        )
        if text is not None:
            line += f", text search {text / noop:.0%}"
        lines.append(f"{line}; micro-batching on/off = {on / off:.2f}×.")
    return lines


ON = "search vector, micro-batch on"
OFF = "search vector, micro-batch off"
TEXT = "search text (micro-batch on)"


def report(
    cells: Sequence[Cell], stats: dict[str, Any], args: argparse.Namespace, minutes: float
) -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    index = stats["index"]
    import fastapi
    import uvicorn

    lines = [
        "## HTTP search: throughput and latency (`bench/bench_http.py`)",
        "",
        f"Run {date.today().isoformat()} on {os.cpu_count()} CPU cores (`nproc` "
        f"{len(os.sched_getaffinity(0))}, {cpu}), no GPU; Python "
        f"{sys.version.split()[0]}, FastAPI {fastapi.__version__}, uvicorn {uvicorn.__version__} "
        f"(one worker), httpx {httpx.__version__}. Whole run {minutes:.1f} min.",
        f"Collection: {stats['count']:,} items × {stats['dim']}-d ({MODEL}), index "
        f"`{index['kind']}` {index['params']} (requested `{index['requested']}`); "
        f"k = {K}, no filter, default `include` (metadata). Vector queries: {QUERIES} "
        f"vectors from the collection's distribution, cycled; text queries: "
        f"{len(COLOURS) * len(SHAPES)} colour × shape phrases (\"a red circle\"), so after "
        f"the first of each they come from the encoder's text cache.",
        f"Each cell: {args.warmup:g} s warm-up, then {args.seconds:g} s recorded; closed loop, "
        f"one keep-alive HTTP/1.1 connection per client. Server and load generator are "
        f"separate processes on the same {os.cpu_count()} cores, so the client's CPU is taken "
        f"from the server; \"server CPU\" and \"client CPU\" are the cores each process kept "
        f"busy during the recorded window. Reproduce with `.venv/bin/python bench/bench_http.py`"
        + (f" --n {args.n}" if args.n != 100_000 else "")
        + ".",
        "",
        *table(cells),
        "",
        *observations(cells),
    ]
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="items in the collection")
    parser.add_argument("--seconds", type=float, default=10.0, help="recorded seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds per cell")
    parser.add_argument("--index", default="hnsw", help="index kind for create_collection")
    parser.add_argument("--data-dir", type=Path, help="keep (and reuse) the data here")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 items, 1 s cells")
    parser.add_argument("--serve", choices=("noop", "latentspace"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n, args.seconds, args.warmup = 5000, 1.0, 0.5
    return args


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    from results import write_section

    started = time.perf_counter()
    tmp = None if args.data_dir else tempfile.mkdtemp(prefix="bench-http-")
    data_dir = args.data_dir or Path(tmp or "")
    try:
        print(f"loading {args.n:,} items into {data_dir}", flush=True)
        x = load(data_dir, args.n, args.index)
        queries = clustered(QUERIES, x.shape[1], seed=1)
        vector_bodies = [
            json.dumps({"query": {"vector": [round(float(v), 6) for v in q]}, "k": K}).encode()
            for q in queries
        ]
        text_bodies = [
            json.dumps({"query": {"text": f"a {c} {s}"}, "k": K}).encode()
            for s in SHAPES
            for c in COLOURS
        ]
        cells: list[Cell] = []
        with server("noop", {}) as (base, pid):
            print("noop", flush=True)
            for clients in CONCURRENCY:
                cells.append(measure("noop", base + "/noop", vector_bodies, clients, pid, args))
        env = {"LATENTSPACE_DATA_DIR": str(data_dir), "LATENTSPACE_AUTH": "off"}
        search = f"/v1/collections/{COLLECTION}/search"
        stats: dict[str, Any] = {}
        for micro_batch, name in ((True, ON), (False, OFF)):
            flag = {"LATENTSPACE_SEARCH__MICRO_BATCH": str(micro_batch).lower()}
            with server("latentspace", {**env, **flag}) as (base, pid):
                stats = httpx.get(f"{base}/v1/collections/{COLLECTION}").json()
                print(f"{name}: {stats['count']:,} items, index {stats['index']}", flush=True)
                assert stats["count"] == args.n, stats
                check = {"query": {"vector": x[0].tolist()}, "k": K}
                hits = httpx.post(base + search, json=check).json()["results"]
                assert len(hits) == K and hits[0]["id"] == "v0", hits[:2]
                for clients in CONCURRENCY:
                    cells.append(measure(name, base + search, vector_bodies, clients, pid, args))
                if micro_batch:
                    for clients in CONCURRENCY:
                        cells.append(measure(TEXT, base + search, text_bodies, clients, pid, args))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    order = ["noop", ON, OFF, TEXT]
    cells.sort(key=lambda c: (order.index(c.endpoint), c.clients))
    body = report(cells, stats, args, (time.perf_counter() - started) / 60)
    print()
    print(body)
    if args.quick:
        print("--quick: bench/RESULTS.md left as it was")
    else:
        write_section("http", body)
        print("wrote the 'http' section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
